"""Terminal rendering for the CLI: progress per stage, summary tables. Library code never prints.

On a terminal, rich progress bars (one per stage); otherwise (CI, cron, `| tee`) one plain
timestamped line per event, so logs stay greppable.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

STATUS_STYLE = {"done": "green", "quarantined": "red", "running": "yellow", "new": "dim", "failed": "red"}


class StageProgress:
    """Receives workflow events (hostname, stage, event, detail) from many threads."""

    def __init__(self, stages: Sequence[str], total: int, console: Console | None = None,
                 verbose: bool = False) -> None:
        self.console = console or Console(stderr=True, emoji=False)
        self.verbose = verbose
        self.interactive = self.console.is_terminal
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[str, int] = {}
        self._live = False
        self._lines = LineWriter()
        if self.interactive:
            self._progress = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=self.console)
            self._tasks = {stage: self._progress.add_task(stage, total=total, note="") for stage in stages}

    def __enter__(self) -> StageProgress:
        if self._progress:
            self._progress.start()
            self._live = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._progress and self._live:
            self._progress.stop()
            self._live = False

    def __call__(self, hostname: str, stage: str, event: str, detail: str) -> None:
        if self._progress is None:
            self._plain(hostname, stage, event, detail)
            return
        with self._lock:
            task = self._tasks.get(stage)
            if task is None:
                return
            if event == "task":  # an Ansible task starting on a host: a note on the bar
                self._progress.update(task, note=f"{hostname}: {detail}"[:60])
                return
            if event == "ok":
                self._progress.advance(task)
            elif event in ("retry", "quarantined"):
                self._progress.update(task, note=f"[red]{hostname} {event}")
                if event == "quarantined":
                    self.console.print(f"[red]{hostname} quarantined at {stage}:[/] {detail}")

    def _plain(self, hostname: str, stage: str, event: str, detail: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if event == "task":  # an Ansible task starting on a host: a line with -v only
            if self.verbose:
                self._lines.write(f"{stamp} {hostname} {stage} task: {detail}")
            return
        suffix = f": {detail}" if detail and event != "ok" else ""
        self._lines.write(f"{stamp} {hostname} {stage} {event}{suffix}")


class LineWriter:
    """Lines from many threads onto one stream, in order, without making any thread wait for the stream.

    A thread that finds no write under way writes every line queued so far in one write, and again
    for lines queued meanwhile, until none is left; the others only queue theirs. A lock held across
    each `print` instead made 1,280 node threads queue behind one another for every progress line
    (1,138 of them waiting on it 9 s into a 1,280-node bring-up, bench/README "Scale, tenth pass"):
    each line cost a write and a wake-up of the next thread in line, one at a time.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream  # None: sys.stderr as it is at each write (pytest's capsys swaps it)
        self._lock = threading.Lock()
        self._queued: list[str] = []
        self._writing = False

    def write(self, line: str) -> None:
        with self._lock:
            self._queued.append(line)
            if self._writing:
                return
            self._writing = True
        try:
            while True:
                with self._lock:
                    lines, self._queued = self._queued, []
                    if not lines:
                        self._writing = False
                        return
                stream = self._stream or sys.stderr
                stream.write("".join(f"{text}\n" for text in lines))
                stream.flush()
        except BaseException:
            with self._lock:
                self._writing = False
            raise


def node_table(rows: Iterable[dict], title: str) -> Table:
    """Rows with hostname/status/stage/detail (+ optional bmc_requests and seconds)."""
    table = Table(title=title, title_justify="left")
    for column in ("node", "status", "stage", "BMC req", "time", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "")
        seconds = sum(row.get("seconds", {}).values())
        table.add_row(row["hostname"], f"[{style}]{row['status']}[/]", row["stage"] or "-",
                      str(row.get("counters", {}).get("bmc_requests", "")), f"{seconds:.1f}s" if seconds else "",
                      _short(row.get("detail") or ""))
    return table


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failures(rows: Iterable[dict]) -> str:
    """The full cause of every node that did not make it, one paragraph each (the table truncates)."""
    lines = [f"{row['hostname']} ({row['status']} at {row.get('current') or row['stage'] or '-'}): {row['detail']}"
             for row in rows if row["status"] not in ("done", "new") and row.get("detail")]
    return "\n".join(lines)


def counts_line(rows: Iterable[dict]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
