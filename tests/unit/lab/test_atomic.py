"""lab.atomic.write_atomic under concurrent writers, and the lab writers that use it (two `lab up`s of one
site rewrite config.json, faults.json, the UFM faults and the TLS material at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lab import faults as lab_faults
from lab.atomic import write_atomic
from lab.hosts import keys
from lab.redfish import tls
from lab.ufm.service import lab_files, write_faults


def _race(write: Callable[[int, int], object], writers: int = 4, rounds: int = 200) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            for i in range(rounds):
                write(n, i)
        except BaseException as err:  # noqa: BLE001 - the test reports what any writer raised
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_writers_of_one_file_never_take_each_others_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "maas" / "config.json"
    assert _race(lambda n, i: write_atomic(path, f'{{"writer": {n}, "i": {i}}}', mode=0o600)) == []
    assert path.read_text().startswith('{"writer": ') and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temporary file left behind


def test_bytes_are_written_as_given_and_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    assert write_atomic(path, b"\x00secret", mode=0o600) == path
    assert path.read_bytes() == b"\x00secret" and (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(TypeError):
        write_atomic(path, 42)  # type: ignore[arg-type]
    assert path.read_bytes() == b"\x00secret" and [p.name for p in tmp_path.iterdir()] == ["key.pem"]


@pytest.mark.parametrize("writer", ["faults", "ufm_faults", "tls", "ssh_config"])
def test_the_lab_writers_race_safely(tmp_path: Path, writer: str) -> None:
    lab_dir = tmp_path / "lab"
    if writer == "faults":
        errors = _race(lambda n, i: lab_faults.write(lab_dir, {f"gpu-{n}": {"bmc_5xx": i / 200}}))
        written = lab_dir / lab_faults.FAULTS_FILE
    elif writer == "ufm_faults":
        errors = _race(lambda n, i: write_faults(lab_dir, [{"kind": "link_down", "writer": n, "i": i}]))
        written = lab_files(lab_dir)["faults"]
    elif writer == "tls":
        written = lab_dir / "tls" / "key.pem"
        errors = _race(lambda n, i: tls._write(written, f"{n}:{i}".encode(), private=True))
        assert written.stat().st_mode & 0o777 == 0o600
    else:  # hosts starting side by side each rewrite ssh_config (the lab's keys exist by then)
        keys.ensure_keys(lab_dir)
        errors = _race(lambda n, i: keys.write_ssh_config(lab_dir, {f"gpu-{n}": f"198.18.1.{i % 200 + 10}"}),
                       rounds=50)
        written = lab_dir / "ssh_config"
        assert written.read_text().count("Host gpu-") == 1
    assert errors == []
    assert written.exists() and not [p for p in written.parent.iterdir() if p.name.endswith(".tmp")]
