"""Configure stage: events reduced per host, batching of close arrivals, failures mapped to nodes."""

from __future__ import annotations

import shlex
import threading
import time

import pytest

from fleet.configure import Batcher, ConfigureStage, HostResult, HostResults, role_versions
from fleet.errors import ConfigureError
from fleet.state import StateDB
from fleet.workflow import NodeContext
from tests.unit.fleet.test_workflow import make_node


def event(kind: str, host: str, task: str = "t", **res: object) -> dict:
    return {"event": kind, "event_data": {"host": host, "task": task, "res": res}}


def test_first_failed_task_is_the_cause_and_unreachable_is_told_apart() -> None:
    results = HostResults()
    for item in [
        event("runner_on_ok", "a", changed=True),
        event("runner_on_ok", "a"),
        event("runner_on_failed", "b", "Install nvidia-driver-550-open", msg="No package matching"),
        event("runner_on_failed", "b", "Later task", msg="consequence"),
        event("runner_on_unreachable", "c", msg="ssh: connect to host 198.18.1.13 port 22: No route to host"),
    ]:
        results.feed(item)
    a, b, c = (results.hosts[h] for h in "abc")
    assert (a.ok, a.ok_tasks, a.changed) == (True, 2, 1)
    assert (b.ok, b.failed_task, b.failed_msg) == (False, "Install nvidia-driver-550-open", "No package matching")
    assert not c.ok and "No route to host" in c.unreachable


def test_ignored_errors_do_not_fail_the_host() -> None:
    results = HostResults()
    results.feed({"event": "runner_on_failed", "event_data": {"host": "a", "task": "probe", "ignore_errors": True,
                                                             "res": {"msg": "x"}}})
    assert results.hosts == {}


def test_skipped_hardware_steps_come_from_the_set_stats_task_of_each_host() -> None:
    results = HostResults()
    step = "fabricmanager: start nvidia-fabricmanager: no NVSwitch (container)"
    results.feed(event("runner_on_ok", "a", "Record the skipped fabric manager start",
                       ansible_stats={"data": {"fleet_skipped": [step]}, "per_host": True, "aggregate": True}))
    results.feed(event("runner_on_ok", "b", "Record the skipped fabric manager start"))
    assert results.hosts["a"].skipped_steps == [step]
    assert results.hosts["b"].skipped_steps == []


def test_nodes_arriving_within_the_window_share_one_run() -> None:
    runs: list[list[str]] = []

    def run(hosts):
        runs.append(sorted(hosts))
        return {h: HostResult(ok_tasks=1) for h in hosts}

    batcher = Batcher(run, window_s=0.3)
    results: dict[str, HostResult] = {}
    threads = [threading.Thread(target=lambda h=h: results.__setitem__(h, batcher.submit(h))) for h in "abcd"]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(5)
    assert runs == [["a", "b", "c", "d"]]
    assert all(r.ok for r in results.values())


def test_a_late_arrival_gets_its_own_run() -> None:
    runs: list[list[str]] = []
    batcher = Batcher(lambda hosts: runs.append(list(hosts)) or {h: HostResult() for h in hosts}, window_s=0.05)
    batcher.submit("a")
    batcher.submit("b")
    assert runs == [["a"], ["b"]]


def test_batch_size_is_capped_and_the_overflow_still_runs() -> None:
    runs: list[list[str]] = []
    batcher = Batcher(lambda hosts: runs.append(list(hosts)) or {h: HostResult() for h in hosts}, window_s=0.3,
                      max_batch=2)
    threads = [threading.Thread(target=batcher.submit, args=(h,)) for h in "abcde"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(h for r in runs for h in r) == list("abcde")
    assert max(len(r) for r in runs) == 2


def test_at_most_max_parallel_runs_at_once_and_a_waiting_batch_fills_up() -> None:
    running, peak, runs = 0, 0, []
    guard = threading.Lock()

    def run(hosts):
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
            runs.append(list(hosts))
        time.sleep(0.5)
        with guard:
            running -= 1
        return {h: HostResult() for h in hosts}

    batcher = Batcher(run, window_s=0.2, max_batch=4, max_parallel=2)
    early = [threading.Thread(target=batcher.submit, args=(f"n{i}",)) for i in range(10)]
    for thread in early:  # two full runs start; the third batch (2 nodes) waits for a slot
        thread.start()
    time.sleep(0.15)
    late = [threading.Thread(target=batcher.submit, args=(f"late{i}",)) for i in range(2)]
    for thread in late:  # they join the waiting batch, not a fourth run
        thread.start()
    for thread in early + late:
        thread.join(5)
    assert peak == 2
    assert sorted(h for r in runs for h in r) == sorted([f"n{i}" for i in range(10)] + ["late0", "late1"])
    assert [len(r) for r in runs] == [4, 4, 4]


def test_a_crashed_run_fails_every_node_of_its_batch() -> None:
    def boom(hosts):
        raise ConfigureError("ansible-runner ended with failed")

    batcher = Batcher(boom, window_s=0.01)
    with pytest.raises(ConfigureError, match="ansible-runner ended with failed"):
        batcher.submit("a")


def stage_result(tmp_path, host_result: HostResult):
    node = make_node(1, 1)
    stage = ConfigureStage(site=None, run_fn=lambda hosts: {node.hostname: host_result}, window_s=0.01,
                           max_parallel=1)
    ctx = NodeContext(node, StateDB(tmp_path / "s.db"), 1, "configure")
    return stage.run(node, ctx), ctx


def test_unreachable_is_retryable_and_a_failed_task_is_not(tmp_path) -> None:
    unreachable, _ = stage_result(tmp_path, HostResult(unreachable="timed out"))
    failed, _ = stage_result(tmp_path, HostResult(failed_task="Hold packages", failed_msg="dpkg lock"))
    assert not unreachable.ok and unreachable.retryable
    assert not failed.ok and not failed.retryable
    assert failed.detail == "task 'Hold packages' failed: dpkg lock"


def test_a_host_key_ssh_refused_quarantines_with_our_explanation(tmp_path) -> None:
    stderr = ("Add correct host key in /nonexistent/known_hosts to get rid of this message.\n"
              "The fingerprint for the ED25519 key sent by the remote host is\n"
              "SHA256:tz/HeBgZXuJNHRCq8xMtRLESRyq96i5bw2WKDNExcgo.\n"
              "Host key for 198.18.1.11 has changed and you have requested strict checking.\n"
              "Host key verification failed.")
    result, _ = stage_result(tmp_path, HostResult(unreachable=f"Failed to connect to the host via ssh: {stderr}"))
    assert not result.ok and result.quarantine and not result.retryable
    assert "SHA256:tz/HeBgZXuJNHRCq8xMtRLESRyq96i5bw2WKDNExcgo" in result.detail and "hostkey accept" in result.detail


def test_success_records_role_versions_and_journals_skipped_steps(tmp_path) -> None:
    result, ctx = stage_result(tmp_path, HostResult(ok_tasks=40, changed=3, skipped_steps=["nvidia_driver: modprobe"]))
    assert result.ok and "1 hardware step(s) skipped" in result.detail
    assert result.evidence["roles"] == role_versions()
    assert [e.event for e in ctx.db.entries()] == ["hardware_step_skipped"]


def test_role_versions_change_when_a_role_file_changes(tmp_path) -> None:
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text("- ansible.builtin.debug: {msg: a}\n")
    before = role_versions(tmp_path / "roles")
    (role / "tasks" / "main.yml").write_text("- ansible.builtin.debug: {msg: b}\n")
    assert role_versions(tmp_path / "roles") != before


def test_a_pending_reboot_reported_by_a_role_is_read_per_host() -> None:
    results = HostResults()
    why = "nvidia_driver: module 550.54.15 loaded, 580.159.04 installed"
    results.feed(event("runner_on_ok", "a", "Report the pending reboot",
                       ansible_stats={"data": {"fleet_reboot_required": [why]}, "per_host": True}))
    results.feed(event("runner_on_ok", "b", "Report the pending reboot"))
    assert results.hosts["a"].reboot_required == [why]
    assert results.hosts["b"].reboot_required == []


def test_a_node_still_running_the_old_driver_module_does_not_pass_configure(tmp_path) -> None:
    why = "nvidia_driver: module 550.54.15 loaded, 580.159.04 installed"
    result, _ = stage_result(tmp_path, HostResult(ok_tasks=9, reboot_required=[why]))
    assert not result.ok and not result.retryable
    assert "reboot required" in result.detail and "550.54.15 loaded" in result.detail
    assert "nvidia_driver_reboot" in result.detail


def test_ansible_runner_gets_a_filtered_environment_without_the_operators_secrets(tmp_path, monkeypatch) -> None:
    import ansible_runner

    from fleet.configure import AnsibleRun

    monkeypatch.setenv("FLEET_MAAS_API_KEY", "consumer:token:secret-in-the-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-not-for-ansible")
    seen: dict = {}

    class Recorder:
        def __init__(self, config, event_handler=None, **kwargs):
            seen["env"] = dict(config.env)
            self.rc, self.status, self.stdout = 0, "successful", None

        def run(self):
            return self.status, self.rc

    monkeypatch.setattr(ansible_runner, "Runner", Recorder)
    from fleet.site import load_site
    from lab.sitegen import SiteShape, write_site

    monkeypatch.setenv("FLEET_LAB_DIR", str(tmp_path / "lab"))
    (tmp_path / "lab").mkdir()
    site = load_site(write_site(tmp_path / "site", SiteShape(racks=1)))
    AnsibleRun(site)(["gpu-001-01"])
    env = seen["env"]
    assert "FLEET_MAAS_API_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert "secret-in-the-env" not in repr(env)
    assert env["PATH"] and env["HOME"] and env["ANSIBLE_CONFIG"].endswith("ansible.cfg")
    # the nodes' host keys: the tool's own known_hosts, strictly, before the site's ssh_config can say otherwise
    args = shlex.split(env["ANSIBLE_SSH_ARGS"])
    assert f"UserKnownHostsFile={site.state_dir / 'known_hosts'}" in args and "StrictHostKeyChecking=yes" in args
    assert args.index("StrictHostKeyChecking=yes") < args.index("-F")


@pytest.mark.parametrize(("names", "alive", "stale"), [
    (["fleet-ansible-4242-abc", "fleet-ansible-77-x", "other-dir"], {77}, ["fleet-ansible-4242-abc"]),
    (["fleet-ansible-notapid-x", "fleet-ansible-77-y"], {77}, []),
    ([], set(), []),
])
def test_runner_dirs_of_dead_processes_are_stale(names, alive, stale) -> None:
    from fleet.configure import stale_runner_dirs

    assert stale_runner_dirs(names, alive.__contains__) == stale


def test_stale_runner_dirs_are_removed_when_a_run_starts(tmp_path, monkeypatch) -> None:
    from fleet.configure import clean_stale_runner_dirs

    dead = tmp_path / "fleet-ansible-999999999-abcd"
    (dead / "artifacts").mkdir(parents=True)
    (dead / "artifacts" / "command").write_text('{"env": {"FLEET_MAAS_API_KEY": "x"}}')
    mine = tmp_path / f"fleet-ansible-{__import__('os').getpid()}-live"
    mine.mkdir()
    assert clean_stale_runner_dirs(tmp_path) == [dead]
    assert not dead.exists() and mine.exists()


def test_ansible_runner_losing_the_playbooks_output_is_a_retryable_configure_failure(tmp_path, monkeypatch) -> None:
    """ansible-runner's last 5 s read of the pty after ansible-playbook exits can time out on a loaded ops
    host (seen at load 82 in the 512-node soak): it raised pexpect's TIMEOUT out of run(), which the
    workflow showed as an internal error and never retried."""
    import ansible_runner
    import pexpect

    from fleet.configure import AnsibleRun
    from fleet.site import load_site
    from fleet.workflow import refused
    from lab.sitegen import SiteShape, write_site

    class LosesOutput:
        def __init__(self, config, event_handler=None, **kwargs):
            self.rc, self.status, self.stdout = 0, "successful", None

        def run(self):
            raise pexpect.TIMEOUT("Timeout exceeded.\n<pexpect.pty_spawn.spawn object at 0x7f>")

    monkeypatch.setattr(ansible_runner, "Runner", LosesOutput)
    monkeypatch.setenv("FLEET_LAB_DIR", str(tmp_path / "lab"))
    (tmp_path / "lab").mkdir()
    site = load_site(write_site(tmp_path / "site", SiteShape(racks=1)))
    with pytest.raises(ConfigureError) as caught:
        AnsibleRun(site)(["gpu-001-01"])
    assert "lost ansible-playbook's output" in str(caught.value) and "TIMEOUT" in str(caught.value)
    assert caught.value.service_message == "Timeout exceeded."
    assert not refused(caught.value)  # the workflow retries it (a crash would quarantine the whole batch)
