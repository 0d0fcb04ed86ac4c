"""fleet.slots: the cap on work in flight that hundreds of node threads share."""

from __future__ import annotations

import threading
import time

import pytest

from fleet.slots import Slots


def test_no_more_than_the_cap_hold_a_slot_at_once():
    slots = Slots(3)
    lock = threading.Lock()
    holding = [0]
    most = [0]

    def work() -> None:
        for _ in range(20):
            with slots:
                with lock:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                time.sleep(0.0005)
                with lock:
                    holding[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 3
    assert holding[0] == 0


def test_a_taker_waits_while_every_slot_is_held_and_goes_on_when_one_is_handed_back():
    slots = Slots(1)
    slots.acquire()
    got = threading.Event()

    def take() -> None:
        with slots:
            got.set()

    thread = threading.Thread(target=take)
    thread.start()
    assert not got.wait(0.2)
    slots.release()
    assert got.wait(5)
    thread.join(5)


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Slots(0)
