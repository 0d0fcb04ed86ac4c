"""BatchedLookups: find_machine's lookups made at the same time share one `machines read`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from fleet.maas.lookup import BatchedLookups


def machine(system_id: str, hostname: str, *macs: str) -> dict[str, Any]:
    interfaces = [{"name": f"eth{n}", "mac_address": mac} for n, mac in enumerate(macs)]
    return {"system_id": system_id, "hostname": hostname, "status": 4, "status_name": "Ready",
            "interface_set": interfaces, "boot_interface": interfaces[0] if interfaces else None}


@dataclass
class FakeMaas:
    """MAAS's `machines read` with a repeated filter (the values are ORed); records every read."""

    machines: list[dict[str, Any]]
    reads: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)  # a read asking for any of these values fails

    async def read_by(self, name: str, values: tuple[str, ...]) -> list[dict[str, Any]]:
        self.reads.append((name, values))
        await asyncio.sleep(0.01)  # a read takes a while: lookups made meanwhile queue for the next one
        if self.fail & set(values):
            raise ConnectionResetError("MAAS went away")
        wanted = {v.lower() for v in values}
        if name == "mac_address":  # MAAS compares MACs as MACs: any case
            return [m for m in self.machines if wanted & {i["mac_address"].lower() for i in m["interface_set"]}]
        return [m for m in self.machines if m["hostname"] in values]


MAAS = [machine(f"id{n:03d}", f"gpu-{n:03d}", f"02:00:00:00:{n // 256:02x}:{n % 256:02x}",
                f"02:aa:00:00:{n // 256:02x}:{n % 256:02x}") for n in range(300)]


def mac(n: int) -> str:
    return f"02:00:00:00:{n // 256:02x}:{n % 256:02x}"


async def find_all(lookups: BatchedLookups, queries: list[tuple[str, str]], *, first_alone: bool = False) -> list[Any]:
    """All the lookups at once; with `first_alone`, the first one's read is in flight before the others come."""
    first: list[asyncio.Task[Any]] = []
    if first_alone:
        first = [asyncio.ensure_future(lookups.find(*queries[0]))]
        await asyncio.sleep(0.001)
        queries = queries[1:]
    return await asyncio.gather(*first, *(lookups.find(name, value) for name, value in queries),
                                return_exceptions=True)


def test_a_lone_lookup_is_one_read_of_its_own_value() -> None:
    maas = FakeMaas(MAAS)
    found = asyncio.run(find_all(BatchedLookups(maas.read_by), [("mac_address", mac(7))]))
    assert [m["system_id"] for m in found[0]] == ["id007"]
    assert maas.reads == [("mac_address", (mac(7),))]


def test_lookups_made_while_a_read_is_in_flight_share_the_next_read_and_each_gets_its_own_answer() -> None:
    maas = FakeMaas(MAAS)
    queries = [("mac_address", mac(n).upper() if n % 2 else mac(n)) for n in range(250)]
    queries += [("mac_address", "02:ff:ff:ff:ff:ff"), ("hostname", "gpu-003"), ("hostname", "gpu-999")]
    found = asyncio.run(find_all(BatchedLookups(maas.read_by, max_per_read=100), queries, first_alone=True))
    for n in range(250):  # upper-case MACs find their machine too, and only it
        assert [m["system_id"] for m in found[n]] == [f"id{n:03d}"]
    assert found[250] == [] and [m["system_id"] for m in found[251]] == ["id003"] and found[252] == []
    mac_reads = [values for name, values in maas.reads if name == "mac_address"]
    # the first lookup is read at once; the 250 that came meanwhile go out together, 100 a read
    assert [len(values) for values in mac_reads] == [1, 100, 100, 50]
    assert [values for name, values in maas.reads if name == "hostname"] == [("gpu-003", "gpu-999")]


def test_the_same_value_asked_twice_is_read_once_and_answered_twice() -> None:
    maas = FakeMaas(MAAS)
    found = asyncio.run(find_all(BatchedLookups(maas.read_by), [("mac_address", mac(1))] * 3))
    assert all([m["system_id"] for m in answer] == ["id001"] for answer in found)
    assert maas.reads == [("mac_address", (mac(1),))]


def test_a_failed_read_fails_only_the_lookups_it_was_for() -> None:
    maas = FakeMaas(MAAS, fail={mac(150)})
    queries = [("mac_address", mac(n)) for n in range(200)]
    found = asyncio.run(find_all(BatchedLookups(maas.read_by, max_per_read=100), queries))
    failed = {n for n, answer in enumerate(found) if isinstance(answer, ConnectionResetError)}
    assert failed == set(range(100, 200))  # the second read held mac 150: lookups 100-199 only
    assert [m["system_id"] for m in found[0]] == ["id000"] and [m["system_id"] for m in found[99]] == ["id099"]


def test_only_mac_and_hostname_lookups_are_batched() -> None:
    with pytest.raises(ValueError, match="cannot batch"):
        asyncio.run(BatchedLookups(FakeMaas(MAAS).read_by).find("id", "id001"))
