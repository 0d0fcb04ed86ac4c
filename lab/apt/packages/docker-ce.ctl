Section: admin
Priority: optional
Standards-Version: 4.6.2
Package: docker-ce
Version: 5:27.3.1-1~debian.12~bookworm
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
Depends: docker-ce-cli
File: /usr/share/doc/docker-ce/README.lab 644
 docker-ce: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/dockerd 755
 #!/usr/bin/python3
 """dockerd stand-in: refuses a bad daemon.json (as dockerd does), then stays resident."""
 import json
 import shutil
 import sys
 import time
 .
 try:
     with open("/etc/docker/daemon.json", encoding="utf-8") as handle:
         config = json.load(handle)
 except FileNotFoundError:
     config = {}
 except ValueError as err:
     sys.exit(f"unable to configure the Docker daemon with file /etc/docker/daemon.json: {err}")
 for name, runtime in config.get("runtimes", {}).items():
     if shutil.which(runtime.get("path", "")) is None:
         sys.exit(f"failed to start daemon: runtime {name}: {runtime.get('path')} not found in PATH")
 default = config.get("default-runtime", "runc")
 if default not in config.get("runtimes", {}) and default != "runc":
     sys.exit(f"failed to start daemon: default runtime {default} is not defined")
 print("API listen on /run/docker.sock (lab stand-in)", flush=True)
 while True:
     time.sleep(3600)
File: /lib/systemd/system/docker.service 644
 [Unit]
 Description=Docker Application Container Engine (lab stand-in)
 Documentation=https://docs.docker.com
 After=network-online.target
 .
 [Service]
 Type=simple
 ExecStart=/usr/bin/dockerd -H fd://
 ExecReload=/bin/kill -s HUP $MAINPID
 Restart=on-failure
 RestartSec=2
 .
 [Install]
 WantedBy=multi-user.target
Description: Docker: the open-source application container engine
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 dockerd validates /etc/docker/daemon.json like the real daemon, then stays resident.
