"""The lab hosts' bytecode cache for zip imports: a hit is what compiling gives, anything odd compiles."""

from __future__ import annotations

import subprocess
import sys
import zipfile
import zipimport
from pathlib import Path
from types import CodeType

from lab.hosts import zipcache
from lab.hosts.plan import base_image_spec, vm_image_spec

SOURCE = b"def answer():\n    return 42\n\nVALUE = answer()\n"


def counting(calls: list[str]) -> zipcache.Compile:
    def compile_source(pathname: str, source: bytes) -> CodeType:
        calls.append(pathname)
        return zipimport._compile_source(pathname, source)  # type: ignore[attr-defined]

    return compile_source


def run(code: CodeType) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(code, namespace)  # noqa: S102 - the test's own source
    return namespace


def test_the_same_source_is_compiled_once_and_named_after_the_zip_importing_it(tmp_path: Path) -> None:
    calls: list[str] = []
    cached = zipcache.caching(counting(calls), lambda: str(tmp_path))
    first = cached("/tmp/ansible_ping_payload_a/payload.zip/m.py", SOURCE)
    second = cached("/tmp/ansible_ping_payload_b/payload.zip/m.py", SOURCE)
    assert calls == ["/tmp/ansible_ping_payload_a/payload.zip/m.py"]
    assert second.co_filename == "/tmp/ansible_ping_payload_b/payload.zip/m.py"
    answer = run(second)["answer"]
    assert answer.__code__.co_filename == second.co_filename  # type: ignore[attr-defined]
    assert run(first)["VALUE"] == run(second)["VALUE"] == 42


def test_a_changed_source_is_compiled_again(tmp_path: Path) -> None:
    calls: list[str] = []
    cached = zipcache.caching(counting(calls), lambda: str(tmp_path))
    cached("/z.zip/m.py", SOURCE)
    changed = cached("/z.zip/m.py", SOURCE.replace(b"42", b"43"))
    assert len(calls) == 2
    assert run(changed)["VALUE"] == 43


def test_a_damaged_entry_is_compiled_and_replaced(tmp_path: Path) -> None:
    calls: list[str] = []
    cached = zipcache.caching(counting(calls), lambda: str(tmp_path))
    cached("/z.zip/m.py", SOURCE)
    for entry in tmp_path.iterdir():
        entry.write_bytes(b"\x00not marshal")
    assert run(cached("/z.zip/m.py", SOURCE))["VALUE"] == 42
    assert run(cached("/z.zip/m.py", SOURCE))["VALUE"] == 42
    assert len(calls) == 2


def test_an_unwritable_cache_compiles_every_time(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")
    calls: list[str] = []
    cached = zipcache.caching(counting(calls), lambda: str(blocked / "cache"))
    assert run(cached("/z.zip/m.py", SOURCE))["VALUE"] == 42
    assert run(cached("/z.zip/m.py", SOURCE))["VALUE"] == 42
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == [blocked]


def test_installed_it_serves_the_second_interpreter_importing_from_a_zip(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = (f"import sys; sys.path.insert(0, {str(Path(zipcache.__file__).parent)!r}); import zipcache;"
              f"zipcache.install(lambda: {str(cache)!r}); sys.path.insert(0, sys.argv[1]); import m;"
              "print(m.VALUE, m.answer.__code__.co_filename)")
    outputs = []
    for run_name in ("first", "second"):
        payload = tmp_path / run_name / "payload.zip"
        payload.parent.mkdir()
        with zipfile.ZipFile(payload, "w") as archive:
            archive.writestr("m.py", SOURCE)
        done = subprocess.run([sys.executable, "-c", script, str(payload)], capture_output=True, text=True,
                              check=True)
        outputs.append(done.stdout.split())
        assert len(list(cache.iterdir())) == 1
    assert outputs == [["42", str(tmp_path / run_name / "payload.zip" / "m.py")]
                       for run_name in ("first", "second")]


def test_the_hook_is_part_of_every_lab_image_and_of_its_key() -> None:
    source = Path(zipcache.__file__).read_text(encoding="utf-8")
    for spec in (base_image_spec(), vm_image_spec()):
        assert sum(source in script for script in spec.setup) == 1
