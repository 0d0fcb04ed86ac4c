Section: admin
Priority: optional
Standards-Version: 4.6.2
Package: docker-ce-cli
Version: 5:27.3.1-1~debian.12~bookworm
Maintainer: fleet lab <lab@fleet.invalid>
Architecture: amd64
File: /usr/share/doc/docker-ce-cli/README.lab 644
 docker-ce-cli: Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
File: /usr/bin/docker 755
 #!/usr/bin/python3
 """docker CLI stand-in: answers version/info from the daemon's config; runs no containers."""
 import json
 import subprocess
 import sys
 .
 args = sys.argv[1:]
 active = subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False).returncode == 0
 if args[:1] in (["--version"], ["-v"]):
     print("Docker version 27.3.1, build ce12230")
     sys.exit(0)
 if not active:
     print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", file=sys.stderr)
     sys.exit(1)
 try:
     with open("/etc/docker/daemon.json", encoding="utf-8") as handle:
         config = json.load(handle)
 except (OSError, ValueError):
     config = {}
 runtimes = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
 runtimes.update(config.get("runtimes", {}))
 info = {
     "ServerVersion": "27.3.1",
     "DefaultRuntime": config.get("default-runtime", "runc"),
     "Runtimes": runtimes,
     "RegistryConfig": {"Mirrors": [m.rstrip("/") + "/" for m in config.get("registry-mirrors", [])]},
     "LoggingDriver": config.get("log-driver", "json-file"),
     "CgroupDriver": "systemd",
     "DockerRootDir": config.get("data-root", "/var/lib/docker"),
     "Containers": 0,
 }
 if args[:1] == ["info"]:
     if "--format" in args:
         template = args[args.index("--format") + 1]
         if template.strip() == "{{json .}}":
             print(json.dumps(info))
         elif template.strip().startswith("{{json ."):
             print(json.dumps(info.get(template.strip()[8:-2].strip())))
         else:
             key = template.strip().strip("{}").strip().lstrip(".")
             print(info.get(key, ""))
     else:
         print(f"Server Version: {info['ServerVersion']}\nDefault Runtime: {info['DefaultRuntime']}\n"
               f"Runtimes: {' '.join(sorted(runtimes))}\nLogging Driver: {info['LoggingDriver']}")
     sys.exit(0)
 if args[:1] == ["version"]:
     print("Client: Docker Engine - Community\n Version: 27.3.1\nServer: Docker Engine - Community\n Engine:\n  Version: 27.3.1")
     sys.exit(0)
 print(f"docker (lab stand-in): '{' '.join(args)}' is not available in the lab", file=sys.stderr)
 sys.exit(125)
Description: Docker CLI: the open-source application container engine
 Lab stand-in built with equivs: NVIDIA's package name and version, no hardware code.
 docker info/version answer from /etc/docker/daemon.json; nothing runs containers.
