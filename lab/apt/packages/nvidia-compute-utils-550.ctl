Section: non-free/utils
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-compute-utils-550
Version: 550.127.05-0ubuntu1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/nvidia-compute-utils-550/README.lab 644
 nvidia-compute-utils-550: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/nvidia-persistenced 755
 #!/bin/sh
 # nvidia-persistenced stand-in: resident, no device access.
 case "$1" in --version) echo "nvidia-persistenced:  version 550.127.05"; exit 0;; esac
 exec sleep infinity
File: /lib/systemd/system/nvidia-persistenced.service 644
 [Unit]
 Description=NVIDIA Persistence Daemon
 Wants=syslog.target
 .
 [Service]
 Type=simple
 ExecStart=/usr/bin/nvidia-persistenced --user root
 ExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced
 .
 [Install]
 WantedBy=multi-user.target
Description: NVIDIA compute utilities
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 nvidia-persistenced stays resident like the real daemon; it touches no device.
