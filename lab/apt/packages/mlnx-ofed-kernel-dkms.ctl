Section: kernel
Priority: optional
Standards-Version: 4.6.2
Package: mlnx-ofed-kernel-dkms
Version: 24.10.OFED.24.10.1.1.4.1-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: all
File: /usr/share/doc/mlnx-ofed-kernel-dkms/README.lab 644
 mlnx-ofed-kernel-dkms: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: DKMS support for mlnx-ofed kernel modules
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 Ships no kernel module source.
