Section: utils
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-container-toolkit
Version: 1.16.2-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
Depends: nvidia-container-toolkit-base (= 1.16.2-1), libnvidia-container-tools (>= 1.16.2-1), libnvidia-container-tools (<< 2.0.0)
File: /usr/share/doc/nvidia-container-toolkit/README.lab 644
 nvidia-container-toolkit: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: NVIDIA Container Toolkit
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
