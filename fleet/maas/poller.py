"""Waiting for many machines at once: one batched `machines read` per interval for every waiter.

512 nodes waiting for Deployed are two requests per interval for MAAS's region controller, not
512; each waiter still keeps its own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleet.maas.decide import Machine

# System ids per batched `machines read`: 256 six-character ids keep the query near 2.6 KB, well
# inside the 8 KB request line that web servers in front of MAAS (and aiohttp) accept.
MAX_IDS_PER_READ = 256

ReadMany = Callable[[tuple[str, ...]], Awaitable[list[dict[str, Any]]]]


@dataclass(eq=False)
class _Waiter:
    """One caller waiting for one machine to leave `busy`, until `end` on the poller's clock."""

    system_id: str
    busy: frozenset[int]
    end: float
    result: asyncio.Future[Machine | None]


class StatusPoller:
    """Reads every machine somebody is waiting for in one batched `machines read` per interval.

    Each waiter keeps the semantics of polling alone: it gets the machine as soon as a read shows it
    out of `busy`, or the machine as last read once its deadline has passed (a read is made at the
    deadline), at most one interval after it started waiting. What is shared is the read: MAAS's
    `machines read` with repeated `id=` filters (chunked by `max_ids_per_read`) answers for all of
    them. A failed read fails the waiters it was for, as their own read would have.

    Lives on one event loop (the client's); not thread-safe, and needs no locks there.
    """

    def __init__(self, read_many: ReadMany, interval_s: float, *, max_ids_per_read: int = MAX_IDS_PER_READ,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read_many = read_many
        self.interval_s = interval_s
        self._max_ids = max_ids_per_read
        self._clock = clock
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def wait(self, system_id: str, busy: Iterable[int], deadline_s: float) -> Machine | None:
        """The machine once it leaves `busy` or `deadline_s` has passed; None if MAAS no longer lists it."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(system_id, frozenset(busy), self._clock() + deadline_s, loop.create_future())
        self._waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        else:
            self._wake.set()  # its deadline may come before the next scheduled read
        try:
            return await waiter.result
        finally:
            self._waiters.remove(waiter)

    async def _run(self) -> None:
        next_read = self._clock()  # the first waiter is read at once, later ones join the next round
        while True:
            # Answered waiters stay listed until their callers resume: they no longer count.
            pending = [w for w in self._waiters if not w.result.done()]
            if not pending:
                return
            delay = min(next_read, *(w.end for w in pending)) - self._clock()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self._read_round(pending)
            next_read = self._clock() + self.interval_s

    async def _read_round(self, waiters: list[_Waiter]) -> None:
        ids = sorted({w.system_id for w in waiters})
        for first in range(0, len(ids), self._max_ids):
            chunk = tuple(ids[first:first + self._max_ids])
            in_chunk = set(chunk)
            members = [w for w in waiters if w.system_id in in_chunk]
            try:
                found = {str(data["system_id"]): data for data in await self._read_many(chunk)}
            except Exception as err:  # noqa: BLE001 - handed to each waiter, whose caller wraps it once
                for waiter in members:
                    if not waiter.result.done():
                        waiter.result.set_exception(err)
                continue
            now = self._clock()
            for waiter in members:
                if waiter.result.done():  # cancelled by its caller's timeout meanwhile
                    continue
                data = found.get(waiter.system_id)
                if data is None:
                    waiter.result.set_result(None)
                    continue
                # Most waiters are still busy: their status is read before a Machine is built of the JSON.
                if int(data["status"]) not in waiter.busy or now >= waiter.end:
                    waiter.result.set_result(Machine.from_api(data))
