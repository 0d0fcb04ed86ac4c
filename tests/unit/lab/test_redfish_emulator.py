"""The lab BMC emulator's caches keep sushy-tools' behaviour (PersistentDict, bcrypt, htpasswd, Systems)."""

from __future__ import annotations

import json
from pathlib import Path

import bcrypt
import flask
import pytest
from sushy_tools import error as sushy_error
from sushy_tools.emulator import auth_basic
from sushy_tools.emulator.memoize import PersistentDict

from lab.redfish.emulator import WriteThroughDict, cached_collection, read_once_per_change, remember_accepted


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


class CountingCheck:
    """Stands in for sushy-tools' bcrypt check: accepts one password, counts every hash."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, entry: str, password: bytes) -> dict[str, str]:
        self.calls += 1
        if password != b"right":
            raise PermissionError("Unauthorized")
        user = entry.split(":", 1)[0]
        return {"HTTP_X_USER": user, "HTTP_X_USER_NAME": user}


def test_an_accepted_password_is_hashed_once_per_htpasswd_entry():
    check = CountingCheck()
    auth_entry = remember_accepted(check)
    first = auth_entry("root:$2b$04$hash", b"right")
    first["HTTP_X_USER"] = "changed by a caller"
    assert auth_entry("root:$2b$04$hash", b"right") == {"HTTP_X_USER": "root", "HTTP_X_USER_NAME": "root"}
    assert check.calls == 1
    auth_entry("root:$2b$04$other", b"right")  # the file changed: a new entry is checked again
    assert check.calls == 2


def test_a_wrong_password_is_checked_and_refused_every_time():
    check = CountingCheck()
    auth_entry = remember_accepted(check)
    auth_entry("root:$2b$04$hash", b"right")
    for _ in range(2):
        with pytest.raises(PermissionError):
            auth_entry("root:$2b$04$hash", b"wrong")
    assert check.calls == 3


def test_systems_collection_is_rendered_once_per_set_of_members_with_the_same_response():
    app = flask.Flask(__name__)
    members = ["a", "b"]
    renders: list[list[str]] = []

    def stock() -> flask.Response:
        renders.append(list(members))
        return flask.Response(response=json.dumps({"Members": [{"@odata.id": f"/S/{m}"} for m in members]}),
                              status=200, content_type="application/json")

    view = cached_collection(stock, lambda: list(members), app.config)
    with app.test_request_context("/redfish/v1/Systems"):
        first, second = view(), view()
        assert first.get_data() == second.get_data() and second.status_code == 200
        assert second.headers["Content-Type"] == "application/json" and len(renders) == 1
        members.append("c")  # a system came: the collection is rendered again
        assert [m["@odata.id"] for m in json.loads(view().get_data())["Members"]] == ["/S/a", "/S/b", "/S/c"]
        app.config["SUSHY_EMULATOR_ALLOWED_INSTANCES"] = ["a"]  # a setting that filters members
        view()
    assert renders == [["a", "b"], ["a", "b", "c"], ["a", "b", "c"]]


def htpasswd(path: Path, users: dict[str, bytes]) -> None:
    path.write_text("".join(f"{user}:{bcrypt.hashpw(pw, bcrypt.gensalt(4)).decode()}\n" for user, pw in users.items()))


def test_htpasswd_is_read_again_only_when_it_changes_and_checked_as_sushy_tools_checks_it(tmp_path: Path):
    auth_file = tmp_path / "htpasswd"
    htpasswd(auth_file, {"root": b"first", "ops": b"other"})
    stock_calls: list[str] = []

    def stock(path: str, username: str, password: bytes) -> dict[str, str]:
        stock_calls.append(username)
        return auth_basic.authenticate(path, username, password)

    check = read_once_per_change(stock)
    assert check(str(auth_file), "root", b"first") == {"HTTP_X_USER": "root", "HTTP_X_USER_NAME": "root"}
    assert check(str(auth_file), "ops", b"other")["HTTP_X_USER"] == "ops"
    with pytest.raises(sushy_error.FishyError, match="Incorrect username or password"):
        check(str(auth_file), "root", b"wrong")
    assert stock_calls == []
    htpasswd(auth_file, {"root": b"second"})  # a new password: the next request sees the new file
    with pytest.raises(sushy_error.FishyError):
        check(str(auth_file), "root", b"first")
    assert check(str(auth_file), "root", b"second")["HTTP_X_USER"] == "root"
    with pytest.raises(sushy_error.FishyError):  # a user the file no longer names: the stock refusal
        check(str(auth_file), "ops", b"other")
    auth_file.unlink()
    with pytest.raises(sushy_error.FishyError):  # no file: the stock error
        check(str(auth_file), "root", b"second")
    assert stock_calls == ["ops", "root"]
