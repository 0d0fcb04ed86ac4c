Section: non-free/libs
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-driver-550-open
Version: 550.127.05-0ubuntu1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
Depends: nvidia-utils-550 (= 550.127.05-0ubuntu1), nvidia-compute-utils-550 (= 550.127.05-0ubuntu1), libnvidia-compute-550 (= 550.127.05-0ubuntu1), nvidia-dkms-550-open (= 550.127.05-0ubuntu1)
File: /usr/share/doc/nvidia-driver-550-open/README.lab 644
 nvidia-driver-550-open: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: NVIDIA driver metapackage (open kernel modules)
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
