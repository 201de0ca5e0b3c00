"""The appliance's control socket: a Unix domain socket, root only (mode
0600), one JSON request per line and one JSON answer per line.  The live
appliance serves it from its Python main thread and hands what concerns
the data plane to the worker through its command ring, so a command takes
effect between two bursts.

    omsctl ctl --socket /run/oms/control.sock stats
    omsctl ctl --socket /run/oms/control.sock mass-cancel --session 1 --account 7
    omsctl kill [--account 7] [--socket /run/oms/control.sock]
    omsctl unkill [--account 7] [--socket /run/oms/control.sock]
    omsctl status | top | order show SESSION CLORDID [--socket ...]  (control/status.py)
"""
from __future__ import annotations

import json
import os
import select
import socket
from collections.abc import Callable

DEFAULT_SOCKET = "/run/oms/control.sock"


class ControlSocket:
    def __init__(self, path: str, handler: Callable[[dict], dict]):
        self.path = path
        self.handler = handler
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # left by a killed run
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: root only
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        self.sock.listen(8)
        self.sock.setblocking(False)

    def poll(self, timeout: float) -> None:
        """Answer the requests that arrive within `timeout` seconds."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(2.0)
            data = b""
            while not data.endswith(b"\n") and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            try:
                answer = self.handler(json.loads(data or b"{}"))
            except (ValueError, KeyError, TypeError) as e:
                answer = {"ok": False, "error": f"bad request: {e}"}
            except RuntimeError as e:
                answer = {"ok": False, "error": str(e)}
            conn.sendall(json.dumps(answer, sort_keys=True, default=str).encode() + b"\n")

    def close(self) -> None:
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def request(path: str, payload: dict, timeout: float = 10.0) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
