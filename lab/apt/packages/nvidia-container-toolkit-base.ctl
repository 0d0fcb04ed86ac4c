Section: utils
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-container-toolkit-base
Version: 1.16.2-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/nvidia-container-toolkit-base/README.lab 644
 nvidia-container-toolkit-base: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/nvidia-ctk 755
 #!/bin/sh
 # nvidia-ctk stand-in.
 case "$1" in --version|-v) echo "NVIDIA Container Toolkit CLI version 1.16.2"; exit 0;; esac
 echo "nvidia-ctk (lab stand-in): $*" >&2
 exit 0
File: /usr/bin/nvidia-container-runtime 755
 #!/bin/sh
 # nvidia-container-runtime stand-in: an OCI runtime path docker can name; runs nothing.
 case "$1" in --version|-v) echo "NVIDIA Container Runtime version 1.16.2"; exit 0;; esac
 echo "nvidia-container-runtime (lab stand-in): no GPUs to inject" >&2
 exit 1
File: /etc/nvidia-container-runtime/config.toml 644
 #accept-nvidia-visible-devices-as-volume-mounts = false
 disable-require = false
 supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
 .
 [nvidia-container-cli]
 environment = []
 ldconfig = "@/sbin/ldconfig"
 load-kmods = true
 .
 [nvidia-container-runtime]
 log-level = "info"
 mode = "auto"
 runtimes = ["docker-runc", "runc", "crun"]
Description: NVIDIA Container Toolkit Base
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
