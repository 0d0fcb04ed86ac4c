Section: non-free/utils
Priority: optional
Standards-Version: 4.6.2
Package: nvidia-utils-550
Version: 550.127.05-0ubuntu1
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/nvidia-utils-550/README.lab 644
 nvidia-utils-550: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/nvidia-smi 755
 #!/usr/bin/python3
 """nvidia-smi stand-in: replays the lab's GPU state from an XML file."""
 import sys
 import xml.etree.ElementTree as ET
 .
 STATE = "/var/lib/fleet-lab/nvidia-smi.xml"
 VERSION = "550.127.05"
 NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
              "Make sure that the latest NVIDIA driver is installed and running.")
 .
 args = sys.argv[1:]
 if "--version" in args:
     print(f"NVIDIA-SMI version  : {VERSION}\nNVML version        : 550.127\nDRIVER version      : {VERSION}\nCUDA Version        : 12.4")
     sys.exit(0)
 try:
     with open(STATE, encoding="utf-8") as handle:
         text = handle.read()
 except OSError:
     print(NO_DRIVER)
     sys.exit(9)
 if "-x" in args or "--xml-format" in args:
     sys.stdout.write(text)
     sys.exit(0)
 root = ET.fromstring(text)
 print(f"Driver Version: {root.findtext('driver_version', VERSION)}   CUDA Version: {root.findtext('cuda_version', '12.4')}")
 for index, gpu in enumerate(root.findall("gpu")):
     print(f"GPU {index}: {gpu.findtext('product_name', 'NVIDIA H100 80GB HBM3')} (UUID: {gpu.findtext('uuid', '')})")
Description: NVIDIA driver support binaries
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 nvidia-smi prints /var/lib/fleet-lab/nvidia-smi.xml (the lab's GPU state) when it exists
 and fails like a driverless host otherwise.
