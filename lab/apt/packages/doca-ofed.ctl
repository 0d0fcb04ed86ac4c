Section: misc
Priority: optional
Standards-Version: 4.6.2
Package: doca-ofed
Version: 2.9.1-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
Depends: mlnx-ofed-kernel-utils (= 24.10.OFED.24.10.1.1.4.1-1), mlnx-ofed-kernel-dkms (= 24.10.OFED.24.10.1.1.4.1-1)
File: /usr/share/doc/doca-ofed/README.lab 644
 doca-ofed: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: DOCA-OFED meta package
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
