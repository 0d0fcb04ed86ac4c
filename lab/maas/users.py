"""The lab MAAS's users: who each API key is, `users/?op=whoami`, and who may act on whose machine.

What real MAAS does that a client can notice:
- Every API key (OAuth token) belongs to one MAAS user; `GET /MAAS/api/2.0/users/?op=whoami` answers
  that user, `GET users/` lists them all ordered by username (canonical/maas
  src/maasserver/api/users.py: `UsersHandler.whoami` returns `request.user`; `UserHandler.fields` are
  username, email, is_local, is_superuser). python-libmaas reads the same fields
  (maas/client/viscera/users.py: `Users.whoami()`, `User.username`, `email`, `is_admin` from
  `is_superuser`).
- A machine's `owner` is the username of whoever allocated or deployed it, null while nobody holds
  it (maasserver/api/machines.py `DISPLAYED_MACHINE_FIELDS`; the owner is cleared on release).
- Acting on a machine needs `NodePermission.edit` (src/maasserver/permissions.py): its owner, or an
  admin. MAAS answers anyone else 403. An admin may release, deploy and power ANY user's machine:
  MAAS does not protect one user's machine from another admin's tooling, so a client must.

The lab has the site's key, whose user is `admin` (a superuser: registering machines takes an
admin's key), and other users who own machines in the datacenter the tool is handed. Their keys
are derived from the site's key, so they are stable for a lab and never stored in the repository;
lab tests act as them through the real API (`key_of`) the way those users' own tooling would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lab.maas.describe import API_PATH

SITE_USER = "admin"
OTHER_USERS = ("alice", "bob")  # non-admin MAAS users who own machines the tool must not touch


@dataclass(frozen=True)
class LabUser:
    """One MAAS user and its API key (consumer:token:secret)."""

    username: str
    api_key: str
    is_superuser: bool = False

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"

    def as_json(self) -> dict[str, object]:
        """The user as MAAS's UserHandler renders it."""
        return {"username": self.username, "email": self.email, "is_local": True,
                "is_superuser": self.is_superuser, "resource_uri": f"{API_PATH}users/{self.username}/"}


def lab_users(site_key: str) -> tuple[LabUser, ...]:
    """The site key's user (an admin) and the other users, each with a key derived from the site's."""
    return (LabUser(SITE_USER, site_key, is_superuser=True),
            *(LabUser(name, derived_key(site_key, name)) for name in OTHER_USERS))


def derived_key(site_key: str, username: str) -> str:
    """A MAAS-shaped key (18:18:32 characters) for `username`, stable for the lab's site key."""
    digest = hashlib.sha512(f"{site_key}:{username}".encode()).hexdigest()
    return f"{digest[:18]}:{digest[18:36]}:{digest[36:68]}"


def key_of(users: tuple[LabUser, ...], username: str) -> str:
    """The API key of one lab user (for tests acting as that user)."""
    return next(user.api_key for user in users if user.username == username)


def may_edit(user: LabUser, owner: str | None) -> bool:
    """NodePermission.edit: the machine is free, the user's own, or the user is an admin."""
    return user.is_superuser or owner is None or owner == user.username
