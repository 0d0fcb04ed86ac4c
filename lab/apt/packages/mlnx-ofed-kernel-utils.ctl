Section: kernel
Priority: optional
Standards-Version: 4.6.2
Package: mlnx-ofed-kernel-utils
Version: 24.10.OFED.24.10.1.1.4.1-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/mlnx-ofed-kernel-utils/README.lab 644
 mlnx-ofed-kernel-utils: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/ofed_info 755
 #!/bin/sh
 # ofed_info stand-in.
 case "$1" in -s) echo "OFED-internal-24.10-1.1.4:"; exit 0;; esac
 echo "OFED-internal-24.10-1.1.4 (lab stand-in)"
File: /etc/infiniband/openib.conf 644
 # Start HCA driver upon boot
 ONBOOT=yes
 # Load IPoIB
 IPOIB_LOAD=yes
 # Load MLX5 modules
 MLX5_LOAD=yes
Description: Userspace tools to restart and tune mlx5 driver
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 ofed_info reports the DOCA-OFED release; there is no HCA behind it.
