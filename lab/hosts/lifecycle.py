"""Lab hosts of every kind together: stop one whatever it is, stop them all, list them.

Containers (`nspawn`) and VMs (`vm`) keep their state the same way under `lab_dir/hosts/<name>/`
with a `kind` file; this module dispatches on it so callers (the CLI, the MAAS hook, `lab down`)
need not know which kind a host is.
"""

from __future__ import annotations

from pathlib import Path

from lab.filelock import locked
from lab.hosts import nspawn, vm
from lab.hosts.nspawn import HostInfo


def list_hosts(lab_dir: Path) -> list[HostInfo]:
    return nspawn.list_hosts(lab_dir)


def stop(name: str, lab_dir: Path) -> bool:
    """Stop host `name` (container or VM) and throw its disk/overlay away; False if there was none."""
    kinds = {h.name: h.kind for h in nspawn.list_hosts(lab_dir)}
    if kinds.get(name) == "vm":
        return vm.stop(name, lab_dir)
    return nspawn.stop(name, lab_dir)


def hosts_lock(lab_dir: Path) -> Path:
    """The lock every change to this lab's set of running hosts takes (a hook run, stop-all)."""
    return lab_dir / "hosts.lock"


def stop_all(lab_dir: Path) -> list[str]:
    """Stop every host of this lab; returns their names. Under the hook's lock (lab.hosts.hook), so a hook
    run that is booting a host finishes first instead of mounting an overlay after the list was read."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    with locked(hosts_lock(lab_dir)):
        names = [h.name for h in nspawn.list_hosts(lab_dir)]
        for name in names:
            stop(name, lab_dir)
    return names
