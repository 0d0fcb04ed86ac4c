"""StatusPoller: many machines waited for at once share one batched `machines read` per interval."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from maas.client.enum import NodeStatus

from fleet.maas import StatusPoller

INTERVAL_S = 0.05
DEPLOYING = {int(NodeStatus.DEPLOYING)}


@dataclass
class FakeMaas:
    """Machines that are Deploying until their time comes; records every batched read."""

    done_at: dict[str, float]  # system_id -> monotonic time it becomes Deployed (inf: never)
    final: dict[str, NodeStatus] = field(default_factory=dict)  # status reached at done_at (Deployed)
    reads: list[tuple[str, ...]] = field(default_factory=list)
    fail_next: Exception | None = None

    async def read_many(self, system_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        self.reads.append(system_ids)
        await asyncio.sleep(0)  # a real read yields to the loop
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err
        now = time.monotonic()
        return [self.machine(system_id, now) for system_id in system_ids if system_id in self.done_at]

    def machine(self, system_id: str, now: float) -> dict[str, Any]:
        status = self.final.get(system_id, NodeStatus.DEPLOYED) if now >= self.done_at[system_id] else \
            NodeStatus.DEPLOYING
        return {"system_id": system_id, "hostname": f"host-{system_id}", "status": int(status),
                "status_name": status.name, "distro_series": "jammy", "tag_names": []}


def wait_all(poller: StatusPoller, waits: list[tuple[str, float]]) -> list[Any]:
    async def main() -> list[Any]:
        return await asyncio.gather(*(poller.wait(system_id, DEPLOYING, deadline_s) for system_id, deadline_s
                                      in waits), return_exceptions=True)

    return asyncio.run(main())


def test_many_waiters_share_about_one_read_per_interval_not_one_each():
    start = time.monotonic()
    ids = [f"m{i:04d}" for i in range(200)]
    maas = FakeMaas({system_id: start + 0.1 + 0.2 * (i % 2) for i, system_id in enumerate(ids)})
    poller = StatusPoller(maas.read_many, INTERVAL_S)
    machines = wait_all(poller, [(system_id, 5.0) for system_id in ids])
    elapsed = time.monotonic() - start
    assert [m.status for m in machines] == [NodeStatus.DEPLOYED] * len(ids)
    intervals = elapsed / INTERVAL_S
    # Polling alone would be one read per waiter per interval: 200 x ~6 here.
    assert len(maas.reads) <= intervals + 2, (len(maas.reads), intervals)
    assert maas.reads[0] == tuple(sorted(ids))
    assert 0.3 <= elapsed < 0.3 + 3 * INTERVAL_S


def test_a_waiter_leaves_once_its_machine_is_done_and_later_reads_ask_only_for_the_rest():
    start = time.monotonic()
    maas = FakeMaas({"fast": start, "slow": start + 0.2})
    machines = wait_all(StatusPoller(maas.read_many, INTERVAL_S), [("fast", 5.0), ("slow", 5.0)])
    assert [m.system_id for m in machines] == ["fast", "slow"]
    assert maas.reads[0] == ("fast", "slow")
    assert all(read == ("slow",) for read in maas.reads[1:]) and len(maas.reads) > 1


def test_each_waiter_keeps_its_own_deadline_and_gets_the_machine_as_last_read():
    start = time.monotonic()
    maas = FakeMaas({"stuck": float("inf"), "done": start + 0.6})
    poller = StatusPoller(maas.read_many, 10.0)  # an interval far beyond both deadlines

    async def main() -> list[tuple[Any, float]]:
        async def timed(system_id: str, deadline_s: float) -> tuple[Any, float]:
            machine = await poller.wait(system_id, DEPLOYING, deadline_s)
            return machine, time.monotonic() - start

        return await asyncio.gather(timed("stuck", 0.3), timed("done", 0.9))

    (stuck, stuck_s), (done, done_s) = asyncio.run(main())
    # Each returns at its own deadline (the bounds leave a loaded machine 0.3-0.5 s of lateness).
    assert stuck.status == NodeStatus.DEPLOYING and 0.3 <= stuck_s < 0.6
    assert done.status == NodeStatus.DEPLOYED and 0.9 <= done_s < 1.4  # read at its deadline, found done
    assert len(maas.reads) == 3  # at the start, at each deadline: never once per waiter per interval


def test_a_waiter_that_joins_later_is_read_in_the_next_round():
    start = time.monotonic()
    maas = FakeMaas({"early": float("inf"), "late": start})
    poller = StatusPoller(maas.read_many, INTERVAL_S)

    async def main() -> float:
        early = asyncio.ensure_future(poller.wait("early", DEPLOYING, 1.0))
        await asyncio.sleep(INTERVAL_S / 2)
        joined = time.monotonic()
        machine = await poller.wait("late", DEPLOYING, 5.0)
        assert machine is not None and machine.status == NodeStatus.DEPLOYED
        early.cancel()
        return time.monotonic() - joined

    assert asyncio.run(main()) <= INTERVAL_S
    assert maas.reads[0] == ("early",) and maas.reads[1] == ("early", "late")


def test_ids_are_read_in_chunks_that_keep_the_query_short():
    start = time.monotonic()
    ids = [f"m{i:04d}" for i in range(25)]
    maas = FakeMaas(dict.fromkeys(ids, start))
    wait_all(StatusPoller(maas.read_many, INTERVAL_S, max_ids_per_read=10), [(i, 1.0) for i in ids])
    assert [len(read) for read in maas.reads] == [10, 10, 5]
    assert sorted(i for read in maas.reads for i in read) == ids


def test_a_failed_read_fails_the_waiters_it_was_for_and_the_rest_carry_on():
    start = time.monotonic()
    maas = FakeMaas({"a": start + 0.1, "b": start + 0.1, "c": start + 0.1}, fail_next=OSError("connection reset"))
    poller = StatusPoller(maas.read_many, INTERVAL_S, max_ids_per_read=2)
    a, b, c = wait_all(poller, [("a", 1.0), ("b", 1.0), ("c", 1.0)])
    assert isinstance(a, OSError) and isinstance(b, OSError)
    assert c.status == NodeStatus.DEPLOYED


def test_a_machine_maas_no_longer_lists_is_none_and_a_failed_status_ends_the_wait():
    start = time.monotonic()
    maas = FakeMaas({"failed": start + 0.05}, final={"failed": NodeStatus.FAILED_DEPLOYMENT})
    gone, failed = wait_all(StatusPoller(maas.read_many, INTERVAL_S), [("gone", 1.0), ("failed", 1.0)])
    assert gone is None
    assert failed.status == NodeStatus.FAILED_DEPLOYMENT


def test_a_cancelled_waiter_stops_being_read_and_the_poller_stops_when_nobody_waits():
    maas = FakeMaas({"a": float("inf"), "b": float("inf")})
    poller = StatusPoller(maas.read_many, INTERVAL_S)

    async def main() -> None:
        a = asyncio.ensure_future(poller.wait("a", DEPLOYING, 5.0))
        b = asyncio.ensure_future(poller.wait("b", DEPLOYING, 5.0))
        await asyncio.sleep(INTERVAL_S * 1.5)
        a.cancel()
        await asyncio.sleep(INTERVAL_S * 2)
        b.cancel()
        reads = len(maas.reads)
        await asyncio.sleep(INTERVAL_S * 3)
        assert len(maas.reads) == reads  # nobody waits: no more reads

    asyncio.run(main())
    assert maas.reads[0] == ("a", "b") and maas.reads[-1] == ("b",)


@pytest.mark.parametrize("deadline_s", [0.0, -1.0])
def test_a_deadline_already_passed_is_one_read(deadline_s):
    maas = FakeMaas({"stuck": float("inf")})
    (machine,) = wait_all(StatusPoller(maas.read_many, 10.0), [("stuck", deadline_s)])
    assert machine.status == NodeStatus.DEPLOYING and len(maas.reads) == 1
