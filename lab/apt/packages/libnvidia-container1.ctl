Section: utils
Priority: optional
Standards-Version: 4.6.2
Package: libnvidia-container1
Version: 1.16.2-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/libnvidia-container1/README.lab 644
 libnvidia-container1: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: NVIDIA container runtime library
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
