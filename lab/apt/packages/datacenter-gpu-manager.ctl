Section: multiverse/devel
Priority: optional
Standards-Version: 4.6.2
Package: datacenter-gpu-manager
Version: 1:3.3.9
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/datacenter-gpu-manager/README.lab 644
 datacenter-gpu-manager: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/nv-hostengine 755
 #!/bin/sh
 # nv-hostengine stand-in: resident, watches nothing.
 case "$1" in -v|--version) echo "Version : 3.3.9"; exit 0;; esac
 exec sleep infinity
File: /usr/bin/dcgmi 755
 #!/bin/sh
 # dcgmi stand-in.
 case "$1" in
   -v|--version) echo "Version : 3.3.9"; exit 0;;
   discovery) echo "0 GPUs found."; exit 0;;
 esac
 echo "Error: unable to establish a connection to the specified host: localhost" >&2
 exit 255
File: /lib/systemd/system/nvidia-dcgm.service 644
 [Unit]
 Description=NVIDIA DCGM service
 Conflicts=dcgm.service
 .
 [Service]
 User=root
 PrivateTmp=false
 Environment="DCGM_HOME_DIR=/var/log/nvidia-dcgm"
 ExecStart=/usr/bin/nv-hostengine -n --service-account nvidia-dcgm
 Restart=on-abort
 .
 [Install]
 WantedBy=multi-user.target
Description: NVIDIA Datacenter GPU Management Tools
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 nv-hostengine stays resident; dcgmi reports no GPUs.
