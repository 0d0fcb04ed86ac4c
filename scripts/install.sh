#!/usr/bin/env bash
# Installs everything the tool, the lab and the tests need on a fresh Debian 12 / Ubuntu 22.04+ machine:
# the system packages (apt) and a virtualenv in .venv with the pinned Python dependencies.
# Idempotent and quick when nothing changed. Run as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc     # the virtualenv (some wheels compile)
  openssh-client iproute2 iptables         # SSH to nodes; the lab's host-only bridge
  systemd-container debootstrap            # lab hosts: nspawn containers from a debootstrapped Debian
  equivs dpkg-dev                          # the lab apt repository of NVIDIA-named stub packages
  qemu-system-x86 qemu-utils               # molecule's VM scenario
  prometheus                               # promtool for the alert rule tests; the lab's Prometheus server
  slurmctld slurm-client munge             # the lab's Slurm controller and the scontrol/squeue/sbatch the tool drives
  postgresql                               # the PostgreSQL state backend's tests start a server (initdb/pg_ctl)
  docker-registry redis-server skopeo      # Kraken's lab: the upstream/agent registries, the tracker's Redis, image push
  git ca-certificates debian-archive-keyring e2fsprogs
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: apt packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "install.sh: Python dependencies into .venv"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
