"""`python -m lab.apt.server --root DIR --bind ADDR --port N`: serve a built repository over HTTP.

A threaded standard-library server: apt on a handful of lab hosts asks for a few index files and
small .debs, so anything heavier would be waste. Requests are logged (one line each) to stderr,
which `lab.control` sends to `lab_dir/logs/apt.log`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("lab.apt.server")


class RepoHandler(SimpleHTTPRequestHandler):
    """Files only: no directory listings (apt never asks for one), request lines through logging."""

    def list_directory(self, path: str):  # type: ignore[no-untyped-def]
        self.send_error(404, "no directory listings")
        return None

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def serve(root: Path, bind: str, port: int) -> None:
    handler = functools.partial(RepoHandler, directory=str(root))
    with ThreadingHTTPServer((bind, port), handler) as server:
        log.info("serving %s on http://%s:%d/", root, bind, port)
        server.serve_forever()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.apt.server")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not (args.root / "Release").is_file():
        print(f"error: {args.root} is not a built repository (no Release file)", file=sys.stderr)
        return 2
    try:
        serve(args.root, args.bind, args.port)
    except OSError as err:
        print(f"error: cannot serve on {args.bind}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
