Section: non-free/kernel
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-dkms-550-open
Version: 550.127.05-0ubuntu1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/nvidia-dkms-550-open/README.lab 644
 nvidia-dkms-550-open: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /etc/modprobe.d/nvidia-graphics-drivers-kms.conf 644
 # This file was installed by nvidia-kernel-common
 options nvidia-drm modeset=0
Description: NVIDIA DKMS package (open kernel modules)
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 Ships no kernel module: lab hosts have no GPU, so the roles skip loading it.
