Section: libdevel
Priority: optional
Standards-Version: 4.6.2
Package: libnccl-dev
Version: 2.21.5-1+cuda12.4
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
Depends: libnccl2 (= 2.21.5-1+cuda12.4)
File: /usr/share/doc/libnccl-dev/README.lab 644
 libnccl-dev: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/include/nccl.h 644
 /* Lab stand-in of NCCL's header: the version macros only. */
 #ifndef NCCL_H_
 #define NCCL_H_
 #define NCCL_MAJOR 2
 #define NCCL_MINOR 21
 #define NCCL_PATCH 5
 #define NCCL_SUFFIX ""
 #define NCCL_VERSION_CODE 22105
 #endif
Description: NVIDIA Collective Communication Library (NCCL) Development Files
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
