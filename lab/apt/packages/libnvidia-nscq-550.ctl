Section: multiverse/devel
Priority: optional
Standards-Version: 4.6.2
Package: libnvidia-nscq-550
Version: 550.127.05-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/libnvidia-nscq-550/README.lab 644
 libnvidia-nscq-550: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: NVSwitch Configuration and Query library
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
