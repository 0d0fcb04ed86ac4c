"""Lab hosts: real Linux hosts (systemd-nspawn containers, QEMU VMs) that stand in for deployed nodes.

When the lab MAAS deploys a node, the lab boots a Debian 12 host for it at the node's inventory
address on a host-only bridge, so Ansible configures a real systemd + sshd + apt machine over SSH
exactly as it would a real one. Releasing the node throws the host's overlay away, like a reimage.

Modules by concern: `plan` (pure decisions: addresses, cache keys, per-host files, argv),
`image` (debootstrap base image, cached), `keys` (lab SSH keys and ssh_config), `bridge` (the
host-only bridge), `nspawn` (container lifecycle), `hook` (the MAAS simulator's hook), `vm` (QEMU).
"""
