"""Power-off to validated, on real lab hosts: configure runs the roles over SSH, validate judges the node.

One healthy node and one with a sick GPU (the lab's `gpu_sick` fault gives its host an ECC-storm
nvidia-smi), both on a new rack MAAS does not know: the healthy one ends `done` at validate, the sick
one is quarantined at validate with the failing checks and who fixes them, and the fleet sweep agrees
and tags it in MAAS. Registration and MAAS's own power control are read from the BMC front's log.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.lab.conftest import LabSite, bmc_log

pytestmark = [pytest.mark.lab, pytest.mark.slow]

HEALTHY, SICK = "gpu-002-01", "gpu-002-02"  # rack 2: clear of the addresses other lab tests use


def test_bring_up_configures_and_validates_and_quarantines_the_sick_gpu(
        make_lab_site: Callable[..., LabSite]) -> None:
    lab = make_lab_site(racks=2, max_hosts=2)
    assert not (lab.lab_dir / "pids").exists()  # nothing runs yet: the run starts the lab, whose MAAS knows no machine
    run = lab.cli("--nodes", f"{HEALTHY},{SICK}", "--fault", f"gpu_sick:{SICK}", "--json", timeout_s=900)
    assert run.returncode == 1, run.stderr[-3000:]
    report = {row["hostname"]: row for row in json.loads(run.stdout)["nodes"]}
    assert (report[HEALTHY]["status"], report[HEALTHY]["stage"]) == ("done", "validate"), report[HEALTHY]["detail"]
    assert (report[SICK]["status"], report[SICK]["current"]) == ("quarantined", "validate")
    assert report[SICK]["detail"].startswith("CRITICAL: gpu_ecc_errors")

    # Unknown to MAAS at first: we registered it, MAAS commissioned and deployed it, powering it itself.
    assert "commission/register:done" in lab.events(HEALTHY)
    resets = [(e["agent"], e["reset"]) for e in bmc_log(lab, HEALTHY) if e.get("reset") and e["status"] < 300]
    assert [reset for agent, reset in resets if agent == "MAAS"] == ["On", "On"]
    assert all(agent in ("MAAS", "fleet-lab-machine-os") for agent, _ in resets), resets

    configured = [e.detail for e in lab.journal(HEALTHY) if e.stage == "configure" and e.event == "stage:ok"]
    assert configured and set(configured[0]["evidence"]["roles"]) >= {"base", "nvidia_driver", "fabricmanager"}
    skipped = [e.detail["step"] for e in lab.journal(HEALTHY) if e.event == "hardware_step_skipped"]
    assert any("fabricmanager" in step for step in skipped), "a host without NVSwitches skips the fabric manager"

    sweep = lab.cli("health", "--nodes", f"{HEALTHY},{SICK}", "--quarantine", "--json")
    assert sweep.returncode == 1, sweep.stderr
    verdicts = {node["node"]: node["verdict"] for node in json.loads(sweep.stdout)["nodes"]}
    assert verdicts == {HEALTHY: "OK", SICK: "CRITICAL"}
    assert "fleet-quarantined" in lab.machine(SICK).tags
    assert "fleet-quarantined" not in lab.machine(HEALTHY).tags

    healed = lab.lab("fault")  # no specs: every fault cleared, the host's hardware follows at once
    assert healed.returncode == 0 and f"{SICK}: hardware now healthy" in healed.stdout
    again = lab.cli("health", "--nodes", SICK, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["verdict"] == "OK"
