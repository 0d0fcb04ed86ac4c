"""The lab MAAS's batch hook queue: one run takes many machines of one event, in order per machine."""

from __future__ import annotations

from lab.maas.server import HookCall, take_batch


def test_a_run_takes_every_queued_machine_of_the_first_event_up_to_the_limit() -> None:
    queue = [HookCall(f"gpu-{i}", "deployed") for i in range(5)]
    taken, rest = take_batch(queue, set(), limit=3)
    assert [c.hostname for c in taken] == ["gpu-0", "gpu-1", "gpu-2"]
    assert [c.hostname for c in rest] == ["gpu-3", "gpu-4"]


def test_a_run_has_one_event_and_a_machines_later_call_waits_for_its_earlier_one() -> None:
    queue = [HookCall("a", "released"), HookCall("b", "deployed"), HookCall("a", "deployed"),
             HookCall("c", "released"), HookCall("c", "deployed")]
    taken, rest = take_batch(queue, set(), limit=10)
    assert [(c.hostname, c.event) for c in taken] == [("a", "released"), ("c", "released")]
    assert rest == [queue[1], queue[2], queue[4]]  # order kept for the next run
    taken, rest = take_batch(rest, busy={"a", "c"}, limit=10)  # a and c still in the running batch
    assert [(c.hostname, c.event) for c in taken] == [("b", "deployed")]
    assert [(c.hostname, c.event) for c in rest] == [("a", "deployed"), ("c", "deployed")]


def test_nothing_is_taken_while_every_queued_machine_is_busy() -> None:
    queue = [HookCall("a", "deployed", ("sid", 1.0))]
    assert take_batch(queue, {"a"}, limit=10) == ([], queue)
