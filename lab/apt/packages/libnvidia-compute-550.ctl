Section: non-free/libs
Priority: optional
Standards-Version: 4.6.2
Package: libnvidia-compute-550
Version: 550.127.05-0ubuntu1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/libnvidia-compute-550/README.lab 644
 libnvidia-compute-550: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: NVIDIA libcompute package
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 Ships no libnvidia-ml.so: NVML reports the library missing, as on a host without the driver.
