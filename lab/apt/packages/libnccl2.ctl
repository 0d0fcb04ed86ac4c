Section: libs
Priority: optional
Standards-Version: 4.6.2
Package: libnccl2
Version: 2.21.5-1+cuda12.4
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/libnccl2/README.lab 644
 libnccl2: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
Description: NVIDIA Collective Communication Library (NCCL) Runtime
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 Ships no libnccl.so: jobs in the lab cannot link against a fake.
