Section: multiverse/devel
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-fabricmanager-550
Version: 550.127.05-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/nvidia-fabricmanager-550/README.lab 644
 nvidia-fabricmanager-550: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/nv-fabricmanager 755
 #!/bin/sh
 # nv-fabricmanager stand-in: refuses a missing config like the real one, then stays resident.
 config=/usr/share/nvidia/nvswitch/fabricmanager.cfg
 while [ $# -gt 0 ]; do
   case "$1" in
     -v|--version) echo "Fabric Manager version is : 550.127.05"; exit 0;;
     -c|--config) config="$2"; shift;;
   esac
   shift
 done
 [ -r "$config" ] || { echo "failed to open config file $config" >&2; exit 1; }
 exec sleep infinity
File: /usr/share/nvidia/nvswitch/fabricmanager.cfg 644
 # Fabric Manager configuration (lab stand-in; same keys as NVIDIA's file)
 LOG_LEVEL=4
 LOG_FILE_NAME=/var/log/fabricmanager.log
 LOG_APPEND_TO_LOG=1
 LOG_FILE_MAX_SIZE=1024
 LOG_USE_SYSLOG=0
 DAEMONIZE=1
 BIND_INTERFACE_IP=127.0.0.1
 STARTING_TCP_PORT=16000
 FABRIC_MODE=0
 FABRIC_MODE_RESTART=0
 STATE_FILE_NAME=/tmp/fabricmanager.state
 FM_CMD_BIND_INTERFACE=127.0.0.1
 FM_CMD_PORT_NUMBER=6666
 FM_STAY_RESIDENT_ON_FAILURES=0
 ACCESS_LINK_FAILURE_MODE=0
 TRUNK_LINK_FAILURE_MODE=0
 NVSWITCH_FAILURE_MODE=0
 ABORT_CUDA_JOBS_ON_FM_EXIT=1
 TOPOLOGY_FILE_PATH=/usr/share/nvidia/nvswitch
File: /lib/systemd/system/nvidia-fabricmanager.service 644
 [Unit]
 Description=NVIDIA fabric manager service
 After=network-online.target
 Requires=network-online.target
 .
 [Service]
 User=root
 PrivateTmp=false
 Type=simple
 ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg
 LimitCORE=infinity
 .
 [Install]
 WantedBy=multi-user.target
Description: Fabric Manager for NVSwitch based systems
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 nv-fabricmanager reads its config and stays resident; it manages no NVSwitch.
