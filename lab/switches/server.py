"""SSH switch simulators (paramiko) that netmiko drives unchanged: one port per switch, one process.

What a client notices of a real switch's SSH, and this does too: password authentication only (a
wrong password is refused by the SSH layer, so netmiko raises its authentication error); an
interactive shell with a PTY that echoes what is typed (netmiko verifies the echo of each command),
answers with CRLF line ends and ends every answer with the prompt of the current mode; the pager
stops long output until a key is pressed; a switch that is down refuses the TCP connection.
The configuration each switch runs and has saved is written to `state_dir/<switch>.json` after
every command, so tests assert what really changed. The CLIs are in lab/switches/cli.py.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import asdict
from pathlib import Path

import paramiko

from lab.switches.cli import DIALECTS, Session, SwitchState

log = logging.getLogger(__name__)


class _Auth(paramiko.ServerInterface):
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.shell = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = username == self.username and password == self.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.shell.set()
        return True


class Switch:
    """One simulated switch: its dialect, state file and the lock its sessions share."""

    def __init__(self, name: str, dialect: str, state_dir: Path) -> None:
        self.name = name
        self.dialect = dialect
        self.path = state_dir / f"{name}.json"
        self.lock = threading.Lock()
        if self.path.is_file():
            self.state = SwitchState(**json.loads(self.path.read_text(encoding="utf-8")))
        else:
            self.state = SwitchState(hostname=name, running=self._initial(name, dialect))
            self.save()

    @staticmethod
    def _initial(name: str, dialect: str) -> list[str]:
        """What a switch runs out of the box: its hostname, nothing fleet-managed."""
        return {"dell_os10": [f"hostname {name}"], "mellanox_mlnxos": [f"hostname {name}"],
                "cumulus_linux": [f"nv set system hostname {name}"]}[dialect]

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state)), encoding="utf-8")
        tmp.replace(self.path)


def _serve_shell(channel: paramiko.Channel, switch: Switch) -> None:
    session: Session = DIALECTS[switch.dialect](switch.state)
    channel.sendall(f"\r\n{session.prompt()}".encode())
    buffer = ""
    after_cr = False  # a CR LF pair ends one line, not two
    while True:
        data = channel.recv(4096)
        if not data:
            return
        for char in data.decode(errors="replace"):
            if char in "\r\n":
                if char == "\n" and after_cr and buffer == "":
                    after_cr = False
                    continue
                after_cr = char == "\r"
                line, buffer = buffer, ""
                channel.sendall(b"\r\n")
                with switch.lock:
                    output = session.handle(line)
                    switch.save()
                if session.closed:
                    channel.close()
                    return
                pages = session.page(output) if output else []
                for index, page in enumerate(pages):
                    channel.sendall(page.replace("\n", "\r\n").encode() + b"\r\n")
                    if index < len(pages) - 1:
                        channel.sendall(session.more.encode())
                        key = channel.recv(1)
                        channel.sendall(b"\r\n")
                        if not key or key in (b"q", b"Q"):
                            break
                channel.sendall(session.prompt().encode())
            elif char in "\x7f\b":
                buffer = buffer[:-1]
            else:
                buffer += char
                channel.sendall(char.encode())


def _handle(client: socket.socket, switch: Switch, host_key: paramiko.PKey, username: str, password: str) -> None:
    transport = paramiko.Transport(client)
    transport.add_server_key(host_key)
    auth = _Auth(username, password)
    try:
        transport.start_server(server=auth)
        channel = transport.accept(30)
        if channel is None or not auth.shell.wait(10):
            return
        _serve_shell(channel, switch)
    except (paramiko.SSHException, EOFError, OSError) as err:
        log.info("%s: session ended: %s", switch.name, err)
    finally:
        transport.close()


def _bind(port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    return server


def _listen(server: socket.socket, switch: Switch, host_key: paramiko.PKey, username: str, password: str) -> None:
    while True:
        client, _ = server.accept()
        threading.Thread(target=_handle, args=(client, switch, host_key, username, password), daemon=True).start()


def serve(config_path: Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    state_dir = Path(config["state_dir"])
    state_dir.mkdir(parents=True, exist_ok=True)
    host_key = paramiko.RSAKey(filename=config["host_key"])
    # each switch's state file exists before any port is bound: a client that sees a port listening
    # (the readiness check) may read a switch's state at once
    switches = [Switch(entry["name"], entry["device_type"], state_dir) for entry in config["switches"]]
    # every port is bound before any is served: a port someone else holds fails the start, by name
    sockets = []
    for entry in config["switches"]:
        try:
            sockets.append(_bind(entry["port"]))
        except OSError as err:
            where = f"127.0.0.1:{entry['port']}"
            raise SystemExit(f"switch {entry['name']}: cannot listen on {where}: {err.strerror}") from None
    threads = []
    for switch, server in zip(switches, sockets, strict=True):
        thread = threading.Thread(target=_listen, args=(server, switch, host_key, config["username"],
                                                       config["password"]), daemon=True)
        thread.start()
        threads.append(thread)
    log.info("serving %d switches", len(threads))
    for thread in threads:
        thread.join()
