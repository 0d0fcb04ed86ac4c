"""Lab hosts only: a bytecode cache for what Python imports from zip files (Ansible's AnsiballZ payloads).

A lab speed measure, installed by the lab image (lab/hosts/plan.py, as a `.pth` file) and nowhere else:
production nodes never have it, and no role or playbook knows of it. Ansible sends every module run to
the node as a zip of the module and the module_utils it imports; Python's zipimport compiles each `.py`
of a zip again on every run, as it writes no bytecode for a zip. Under the lab VM's software emulation
that costs seconds per task (see tests/molecule/README.md, "Timings").

The cache is correct by construction: an entry is keyed by a hash of the source bytes, the interpreter's
bytecode magic and its optimisation level, the whole input of zipimport's compile, so a hit is the code
that compiling would give; only its file name is set to the importing zip's path, as importlib does for
a `.pyc` found elsewhere. Entries live under the running user's own home (`~/.cache`), so no user loads
code another user wrote. Anything that fails (no home, a full disk, a damaged entry) compiles as usual.

Standard library only: it runs in the lab host's Python at every interpreter start, so the start itself
imports nothing new (hashlib and pwd load on the first compile from a zip).
"""

from __future__ import annotations

import marshal
import os
import sys
import zipimport

TYPE_CHECKING = False  # the interpreter's start imports neither typing nor types: this module neither
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType

    Compile = Callable[[str, bytes], CodeType]

CACHE_NAME = "fleet-lab-zipimport"


def cache_dir() -> str:
    """The running user's cache folder (from the password database: sudo may keep the caller's $HOME)."""
    import pwd

    return os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, ".cache", CACHE_NAME)


def cache_key(source: bytes) -> str:
    """Everything zipimport's compile depends on but the file name, hashed."""
    import hashlib
    from importlib.util import MAGIC_NUMBER

    return hashlib.sha256(MAGIC_NUMBER + bytes([sys.flags.optimize]) + source).hexdigest()


def load(path: str, pathname: str) -> CodeType | None:
    """The cached code at `path` with its file name set to `pathname`; None if there is none or it is damaged."""
    import _imp

    try:
        with open(path, "rb") as entry:
            code = marshal.loads(entry.read())  # noqa: S302 (the user's own 0700 folder, written by store)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(code, type(load.__code__)):  # a code object (types.CodeType, without importing types)
        return None
    _imp._fix_co_filename(code, pathname)
    return code


def store(path: str, code: CodeType) -> None:
    """Write an entry whole or not at all (another module run of the same host may read it meanwhile)."""
    partial = f"{path}.{os.getpid()}.partial"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(partial, "wb") as entry:
            entry.write(marshal.dumps(code))
        os.replace(partial, path)
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(partial)


def caching(compile_source: Compile, directory: Callable[[], str] = cache_dir) -> Compile:
    """zipimport's compile, looked up in and added to the cache."""

    def compile_cached(pathname: str, source: bytes) -> CodeType:
        try:
            path = os.path.join(directory(), cache_key(source) + ".pyc")
        except (KeyError, OSError):  # a uid without a password entry: no cache for it
            return compile_source(pathname, source)
        code = load(path, pathname)
        if code is None:
            code = compile_source(pathname, source)
            store(path, code)
        return code

    return compile_cached


def install(directory: Callable[[], str] = cache_dir) -> None:
    """Put the cache in front of zipimport's compile (CPython 3.8-3.12 compile there); elsewhere do nothing."""
    compile_source = getattr(zipimport, "_compile_source", None)
    if compile_source is not None and not getattr(compile_source, "fleet_lab_cached", False):
        cached = caching(compile_source, directory)
        cached.fleet_lab_cached = True  # type: ignore[attr-defined]
        zipimport._compile_source = cached  # type: ignore[attr-defined]
