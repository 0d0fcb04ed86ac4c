"""lab.maas.store.write_atomic under concurrent writers (two `lab up`s of one site write config.json at once)."""

from __future__ import annotations

import threading
from pathlib import Path

from lab.maas.store import write_atomic


def test_concurrent_writers_of_one_file_never_take_each_others_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "maas" / "config.json"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(200):
                write_atomic(path, f'{{"writer": {n}, "i": {i}}}', mode=0o600)
        except BaseException as err:  # noqa: BLE001 - the test reports what any writer raised
            errors.append(err)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert errors == []
    assert path.read_text().startswith('{"writer": ') and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temporary file left behind
