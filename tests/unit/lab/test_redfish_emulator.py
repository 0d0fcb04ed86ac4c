"""The lab BMC emulator's write-through cache keeps sushy-tools' PersistentDict behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
from sushy_tools.emulator.memoize import PersistentDict

from lab.redfish.emulator import WriteThroughDict


def persistent(state_dir: Path) -> PersistentDict:
    store = PersistentDict()
    store.make_permanent(str(state_dir), "fakedriver")
    return store


def test_writes_land_in_sqlite_so_a_restarted_emulator_sees_them(tmp_path: Path):
    backing = persistent(tmp_path)
    backing["a"] = {"uuid": "a", "power_state": "Off"}
    cache = WriteThroughDict(backing)
    cache["a"] = {"uuid": "a", "power_state": "On"}
    cache["b"] = {"uuid": "b", "power_state": "Off"}
    restarted = persistent(tmp_path)
    assert restarted["a"]["power_state"] == "On" and restarted["b"] == {"uuid": "b", "power_state": "Off"}
    del cache["b"]
    assert "b" not in persistent(tmp_path) and "b" not in cache


def test_each_read_is_a_fresh_copy_as_with_the_stock_dict(tmp_path: Path):
    backing = persistent(tmp_path)
    backing["a"] = {"uuid": "a", "power_state": "Off", "nics": [{"mac": "02:00:00:00:00:01"}]}
    cache = WriteThroughDict(backing)
    read = cache["a"]
    read["power_state"] = "On"
    read["nics"].append({"mac": "02:00:00:00:00:02"})
    assert cache["a"] == backing["a"] == {"uuid": "a", "power_state": "Off", "nics": [{"mac": "02:00:00:00:00:01"}]}


def test_order_and_missing_keys_match_the_backing_store(tmp_path: Path):
    backing = persistent(tmp_path)
    for key in ("uuid-c", "uuid-a", "uuid-b"):
        backing[key] = {"uuid": key}
    cache = WriteThroughDict(backing)
    cache["uuid-a"] = {"uuid": "uuid-a", "power_state": "On"}
    cache["uuid-0"] = {"uuid": "uuid-0"}
    assert list(cache) == list(persistent(tmp_path))
    assert len(cache) == len(persistent(tmp_path)) == 4
    with pytest.raises(KeyError):
        cache["missing"]
