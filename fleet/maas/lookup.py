"""Finding many machines at once: lookups made at the same time share one `machines read`.

A bring-up of new racks looks every node up by PXE MAC in discover, bios, commission and os (and by
hostname when MAAS does not know the MAC yet): alone, that is one `machines read` per node and stage
for MAAS's region controller, and at 1,280 nodes they all come in the first seconds. A lookup that
arrives while a read of its kind is in flight waits for that read to return and then goes out with
every other one that waited, as one read with the filter repeated (MAAS ORs the values of a repeated
filter, as it does for `id=`). A lone lookup costs what it did; a stampede costs one read per
`max_per_read` nodes. Each caller gets what its own read would have returned: the machines matching
its value (a MAC among the machine's interfaces, compared case-insensitively, or the hostname).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fleet.maas.decide import Machine

# Values per read: a MAC is ~40 characters of query once escaped (mac_address=02%3A4c...), so 100 of
# them keep the request line near 4 KB, inside the 8 KB that web servers in front of MAAS accept.
MAX_PER_READ = 100
FIELDS = ("mac_address", "hostname")

ReadBy = Callable[[str, tuple[str, ...]], Awaitable[list[dict[str, Any]]]]


def keys(field: str, machine: dict[str, Any]) -> set[str]:
    """The values of `field` for which MAAS's read filtered by that value alone lists `machine` (pure).

    MACs are lower-cased: MAAS compares them as MACs, not as text; lookups are lower-cased to match."""
    if field == "mac_address":
        return {mac.lower() for mac in Machine.from_api(machine).macs}
    return {str(machine.get("hostname", ""))}


def normal(field: str, value: str) -> str:
    return value.lower() if field == "mac_address" else value


class BatchedLookups:
    """Coalesces `machines read mac_address=` (or `hostname=`) lookups that overlap in time.

    Lives on one event loop (the client's); not thread-safe, and needs no locks there. A failed read
    fails the lookups it was for, as their own read would have.
    """

    def __init__(self, read_by: ReadBy, *, max_per_read: int = MAX_PER_READ) -> None:
        self._read_by = read_by
        self._max = max_per_read
        self._waiting: dict[str, dict[str, list[asyncio.Future[list[dict[str, Any]]]]]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}

    async def find(self, field: str, value: str) -> list[dict[str, Any]]:
        """The machines MAAS lists for `field=value` (`field` is one of FIELDS)."""
        if field not in FIELDS:
            raise ValueError(f"cannot batch lookups by {field!r}")
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._waiting.setdefault(field, {}).setdefault(normal(field, value), []).append(result)
        reader = self._readers.get(field)
        if reader is None or reader.done():
            self._readers[field] = loop.create_task(self._drain(field))
        return await result

    async def _drain(self, field: str) -> None:
        while self._waiting.get(field):
            waiting = self._waiting.pop(field)  # lookups made from here on wait for the next round
            values = list(waiting)
            for first in range(0, len(values), self._max):
                chunk = values[first:first + self._max]
                try:
                    found = await self._read_by(field, tuple(chunk))
                except Exception as err:  # noqa: BLE001 - handed to each lookup, whose caller wraps it once
                    for value in chunk:
                        for result in waiting[value]:
                            if not result.done():
                                result.set_exception(err)
                    continue
                by_value: dict[str, list[dict[str, Any]]] = {}
                for machine in found:
                    for key in keys(field, machine):
                        by_value.setdefault(key, []).append(machine)
                for value in chunk:
                    mine = by_value.get(value, [])
                    for result in waiting[value]:
                        if not result.done():  # cancelled by its caller's timeout meanwhile
                            result.set_result(mine)
