"""A cap on work in flight shared by hundreds of threads (BMC requests, MAAS deployments at once).

`threading.Semaphore` is Python code around a `Condition`: every acquire and every release takes the
condition's lock, and a thread that loses the GIL while holding that lock stops every other thread at
it. In a 1,280-node bring-up 918 node threads were found waiting there for the BMC request cap, with
the cap (1,280) far from reached (bench/README "Scale, tenth pass"). `queue.SimpleQueue` is written in
C: taking a token and handing it back are one call each under the GIL, and a taker blocks only when
no token is left.
"""

from __future__ import annotations

import queue


class Slots:
    """At most `count` holders at once; `with slots:` holds one. Release only what was acquired."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"a cap of {count}: at least 1 is needed")
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._tokens.put(None)

    def acquire(self) -> None:
        self._tokens.get()

    def release(self) -> None:
        self._tokens.put(None)

    def __enter__(self) -> Slots:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
