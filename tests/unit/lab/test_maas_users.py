"""The lab MAAS's users: one per API key, MAAS's NodePermission.edit (owner or admin), whoami's shape."""

from __future__ import annotations

from maas.client.bones import SessionAPI
from maas.client.utils.creds import Credentials

from lab.maas.describe import describe
from lab.maas.users import OTHER_USERS, SITE_USER, derived_key, key_of, lab_users, may_edit

SITE_KEY = "a" * 18 + ":" + "b" * 18 + ":" + "c" * 32


def test_the_site_key_is_an_admin_and_every_other_user_has_a_distinct_maas_shaped_key() -> None:
    users = lab_users(SITE_KEY)
    assert [(u.username, u.is_superuser) for u in users] == [(SITE_USER, True), *((n, False) for n in OTHER_USERS)]
    keys = [u.api_key for u in users]
    assert len(set(keys)) == len(keys) and key_of(users, SITE_USER) == SITE_KEY
    assert all([len(part) for part in key.split(":")] == [18, 18, 32] for key in keys)
    assert derived_key(SITE_KEY, "alice") == key_of(lab_users(SITE_KEY), "alice")  # stable for a lab


def test_only_the_owner_or_an_admin_may_act_on_an_owned_machine() -> None:
    admin, alice, bob = lab_users(SITE_KEY)
    assert may_edit(alice, None) and may_edit(alice, "alice") and not may_edit(alice, "bob")
    assert may_edit(admin, "bob")  # MAAS lets an admin act on anyone's machine: the client must hold back
    assert not may_edit(bob, "admin")


def test_whoami_renders_maas_user_fields_and_libmaas_binds_the_operation() -> None:
    user = lab_users(SITE_KEY)[1].as_json()
    assert user == {"username": "alice", "email": "alice@example.com", "is_local": True, "is_superuser": False,
                    "resource_uri": "/MAAS/api/2.0/users/alice/"}
    session = SessionAPI(describe("http://127.0.0.1:1"), Credentials("c", "t", "s"))
    actions = dict(dict(session.handlers)["Users"].actions)
    assert actions["whoami"].op == "whoami" and actions["whoami"].method == "GET"
