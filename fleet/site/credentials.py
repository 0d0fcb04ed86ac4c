"""Credentials by reference: the site names where each secret lives (env, a file, an ansible-vault file).

Secrets are read only when a client asks (`resolve_credentials`), never at load time, so loading
a site, printing it or a dry run cannot leak one; inline secrets are refused at load time. A plain
secret file (and the vault password file) must be the user's own and closed to everyone else
(mode 0600 or stricter), as ssh insists for keys: one others can read is refused, saying how to fix it.

Every BMC client of a run resolves its credentials (1,280 at once at scale), and they usually share
one file: a file's parsed content is kept while it stays the same file (inode, size, mtime), so it is
parsed (or decrypted: an ansible-vault decrypt is tens of ms) once, and a changed file is read again.
The permission checks still run on every resolve.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import FleetError
from fleet.site.control import expand_path
from fleet.site.model import CredentialRef, Credentials, SecretRef, Site
from fleet.site.schema import Problems

SECRET_KINDS = ("env", "file", "vault")
_parsed: dict[tuple[str, ...], Any] = {}  # (kind, path, file identity...) -> parsed content
_parsed_lock = threading.Lock()


def parse_credentials(file: Path, raw: Any, problems: Problems) -> dict[str, CredentialRef]:
    """The site's `credentials:` section: name -> {username, secret: {env|file|vault, key}}."""
    result: dict[str, CredentialRef] = {}
    if not isinstance(raw, dict):
        if raw is not None:
            problems.add(file, "credentials", "expected a mapping of name -> reference", "see inventory/README.md")
        return result
    for name, entry in raw.items():
        path = f"credentials.{name}"
        if not problems.keys(entry, file, path, {"secret"}, {"username"}):
            continue
        secret = entry.get("secret")
        if isinstance(secret, str):
            problems.add(
                file,
                f"{path}.secret",
                "inline secret: secrets must never be written into the inventory",
                "reference it instead: {env: VAR}, {file: PATH, key: K} or {vault: PATH, key: K}",
            )
            continue
        ref = _secret_ref(file, f"{path}.secret", secret, problems)
        if ref:
            result[name] = CredentialRef(name, str(entry.get("username", "")), ref)
    return result


def _secret_ref(file: Path, path: str, raw: Any, problems: Problems) -> SecretRef | None:
    if raw is None:
        return None
    if not problems.keys(raw, file, path, set(), set(SECRET_KINDS) | {"key"}):
        return None
    kinds = [k for k in SECRET_KINDS if k in raw]
    if len(kinds) != 1:
        problems.add(file, path, "a secret reference needs exactly one of env, file, vault", "e.g. {env: BMC_PASSWORD}")
        return None
    kind = kinds[0]
    if kind in ("file", "vault") and not raw.get("key"):
        problems.add(file, f"{path}.key", f"a {kind} reference needs the key to read", "add key: <name in the file>")
        return None
    return SecretRef(kind, str(raw[kind]), str(raw.get("key", "")))


def resolve_credentials(site: Site, name: str) -> Credentials:
    """Read a credential's secret from where its reference points; only clients call this, late."""
    ref = site.credentials.get(name)
    if ref is None:
        raise FleetError(f"credentials '{name}' are not defined in the site", hint="add them under credentials:")
    return Credentials(ref.username, _read_secret(site, ref))


def secret_file_problem(path: Path, mode: int, owner: int, me: int) -> str | None:
    """Why a secret file's permissions are unsafe (pure), or None."""
    if owner != me:
        return f"{path} is owned by uid {owner}, not by you (uid {me}): chown {me} {path}"
    if mode & 0o077:
        return f"{path} has mode {stat.S_IMODE(mode):04o}: others can read it: chmod 600 {path}"
    return None


def _check_private(path: Path, where: str) -> None:
    try:
        info = path.stat()
    except OSError as err:
        raise FleetError(f"{where}: cannot read {path} ({err.strerror})",
                         hint="create the file (mode 0600) or fix the path") from None
    problem = secret_file_problem(path, info.st_mode, info.st_uid, os.geteuid())
    if problem:
        raise FleetError(f"{where}: refusing the secret file {problem}", hint="then run again")


def _read_secret(site: Site, ref: CredentialRef) -> str:
    secret = ref.secret
    where = f"credentials.{ref.name}.secret"
    if secret.kind == "env":
        value = os.environ.get(secret.value)
        if not value:
            raise FleetError(f"{where}: environment variable {secret.value} is not set",
                             hint=f"export {secret.value}=... before running")
        return value
    path = expand_path(site.path, secret.value, site.path_vars)
    if secret.kind == "vault":
        password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
        if password_file:
            _check_private(Path(password_file), f"{where} (ANSIBLE_VAULT_PASSWORD_FILE)")
        data = _cached(("vault", str(path), password_file or ""), (path, Path(password_file or path)),
                       lambda: _read_vault(path, where))
    else:
        _check_private(path, where)
        data = _cached(("file", str(path)), (path,), lambda: _read_plain(path, where))
    if not isinstance(data, dict) or not data.get(secret.key):
        raise FleetError(f"{where}: key '{secret.key}' not found in {path}", hint="add the key to that file")
    return str(data[secret.key])


def _cached(key: tuple[str, ...], files: tuple[Path, ...], read: Callable[[], Any]) -> Any:
    """`read()`, or what it returned before for the same files unchanged (inode, size, mtime)."""
    try:
        identity = tuple(str(part) for p in files for part in _identity(p))
    except OSError:
        return read()  # the reader says what is wrong with the file
    with _parsed_lock:
        if (*key, *identity) in _parsed:
            return _parsed[(*key, *identity)]
    data = read()
    with _parsed_lock:
        for old in [k for k in _parsed if k[:len(key)] == key]:
            del _parsed[old]  # the file changed: its old content goes
        _parsed[(*key, *identity)] = data
    return data


def _identity(path: Path) -> tuple[int, int, int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _read_plain(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise FleetError(f"{where}: cannot read {path} ({err.strerror})",
                         hint="create the file (mode 0600) or fix the path") from None
    except yaml.YAMLError:
        # the parser's message quotes the offending text, which may be the secret itself
        raise FleetError(f"{where}: {path} is not valid YAML", hint="write key: value lines") from None


def _read_vault(path: Path, where: str) -> Any:
    """Decrypt an ansible-vault file with the password file named by ANSIBLE_VAULT_PASSWORD_FILE."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        raise FleetError(f"{where}: {path} is an ansible-vault file but ANSIBLE_VAULT_PASSWORD_FILE is not set",
                         hint="export ANSIBLE_VAULT_PASSWORD_FILE=/path/to/vault-password")
    _check_private(Path(password_file), f"{where} (ANSIBLE_VAULT_PASSWORD_FILE)")
    try:
        password = Path(password_file).read_bytes().strip()
        plain = VaultLib([("default", VaultSecret(password))]).decrypt(path.read_bytes())
    except Exception as err:  # noqa: BLE001 - ansible raises several unrelated types here
        raise FleetError(f"{where}: cannot decrypt {path} ({type(err).__name__})",
                         hint="check the vault password file") from None
    return yaml.safe_load(plain)
