"""fleet.render: plain progress lines, and LineWriter, which no node thread waits behind."""

from __future__ import annotations

import io
import threading

import pytest

from fleet.render import LineWriter, StageProgress


class HeldStream(io.StringIO):
    """A stream whose first write blocks until released: a slow pipe or terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        if not self.writes:
            self.entered.set()
            assert self.release.wait(5)
        self.writes.append(text)
        return super().write(text)


def test_a_thread_queues_its_line_and_returns_while_another_writes_then_that_writer_writes_it():
    stream = HeldStream()
    writer = LineWriter(stream)
    first = threading.Thread(target=writer.write, args=("gpu-001-01 discover start",))
    first.start()
    assert stream.entered.wait(5)
    second = threading.Thread(target=writer.write, args=("gpu-001-02 discover start",))
    second.start()
    second.join(2)
    assert not second.is_alive(), "the second thread waited for the stream"
    writer.write("gpu-001-03 discover start")  # and so does this one
    stream.release.set()
    first.join(5)
    assert stream.writes == ["gpu-001-01 discover start\n", "gpu-001-02 discover start\ngpu-001-03 discover start\n"]


def test_no_line_is_lost_or_reordered_within_a_thread_when_many_threads_write_at_once():
    stream = io.StringIO()
    writer = LineWriter(stream)

    def node(number: int) -> None:
        for event in range(200):
            writer.write(f"gpu-{number:03d} {event}")

    threads = [threading.Thread(target=node, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 16 * 200
    for number in range(16):
        mine = [int(line.split()[1]) for line in lines if line.startswith(f"gpu-{number:03d} ")]
        assert mine == list(range(200))


def test_a_failed_write_reaches_its_writer_and_the_next_line_is_written():
    class Broken(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.fail = True

        def write(self, text: str) -> int:
            if self.fail:
                self.fail = False
                raise BrokenPipeError("stderr closed")
            return super().write(text)

    stream = Broken()
    writer = LineWriter(stream)
    with pytest.raises(BrokenPipeError):
        writer.write("lost")
    writer.write("kept")
    assert stream.getvalue() == "kept\n"


def test_plain_progress_is_one_line_per_event_with_the_detail_of_failures_and_tasks_only_with_verbose(capsys):
    progress = StageProgress(["discover", "os"], 1)  # pytest's stderr is no terminal: plain lines
    progress("gpu-001-01", "discover", "start", "")
    progress("gpu-001-01", "discover", "ok", "identity checked")
    progress("gpu-001-01", "os", "task", "Install the driver")
    progress("gpu-001-01", "os", "retry", "MAAS said Failed deployment")
    verbose = StageProgress(["os"], 1, verbose=True)
    verbose("gpu-001-02", "os", "task", "Install the driver")
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == ["gpu-001-01 discover start", "gpu-001-01 discover ok",
                     "gpu-001-01 os retry: MAAS said Failed deployment", "gpu-001-02 os task: Install the driver"]
