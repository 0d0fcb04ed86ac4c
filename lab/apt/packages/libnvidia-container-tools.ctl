Section: utils
Priority: optional
Standards-Version: 4.6.2
Package: libnvidia-container-tools
Version: 1.16.2-1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
Depends: libnvidia-container1 (>= 1.16.2-1)
File: /usr/share/doc/libnvidia-container-tools/README.lab 644
 libnvidia-container-tools: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/nvidia-container-cli 755
 #!/bin/sh
 # nvidia-container-cli stand-in.
 case "$1" in --version|-V) echo "cli-version: 1.16.2"; echo "lib-version: 1.16.2"; exit 0;; esac
 echo "nvidia-container-cli: initialization error: nvml error: driver not loaded" >&2
 exit 1
Description: NVIDIA container runtime library (command-line tools)
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
