"""The observability HTTP server of the live appliance, on one address
(observability.listen, localhost by default):

    /metrics           Prometheus exposition (control/metrics.py)
    /                  the live latency heatmap page (control/web/)
    /api/heatmap       its data: columns after ?after=SEQ (control/heatmap.py)
    /static/NAME       the page's script and styles, shipped in control/web/

It runs in its own thread and only reads the data plane."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from control.heatmap import HeatmapSampler
from control.metrics import DataPlaneSource, exposition, make_registry

WEB = Path(__file__).resolve().parent / "web"
STATIC = {"heatmap.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


class ObservabilityServer:
    def __init__(self, source: DataPlaneSource, listen: str = "127.0.0.1:9478",
                 interval_s: float = 1.0):
        host, _, port = listen.rpartition(":")
        self.registry = make_registry(source)
        self.sampler = HeatmapSampler(source, interval_s)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # no line per scrape on stderr
                pass

            def do_GET(self):
                server.handle(self)

        # bind errors (address in use, not ours) surface here, to the caller
        self.httpd = ThreadingHTTPServer((host, int(port)), Handler)
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        u = urlparse(req.path)
        if u.path == "/metrics":
            self._send(req, 200, CONTENT_TYPE_LATEST, exposition(self.registry))
        elif u.path == "/api/heatmap":
            q = parse_qs(u.query)
            try:
                after = int(q.get("after", ["0"])[0])
            except ValueError:
                self._send(req, 400, "text/plain", b"after: an integer\n")
                return
            body = {**self.sampler.describe(), "columns": self.sampler.after(after)}
            self._send(req, 200, "application/json", json.dumps(body).encode())
        elif u.path in ("/", "/index.html"):
            self._send(req, 200, "text/html; charset=utf-8", (WEB / "index.html").read_bytes())
        elif u.path.startswith("/static/") and u.path[8:] in STATIC:
            name = u.path[8:]
            self._send(req, 200, STATIC[name], (WEB / name).read_bytes())
        else:
            self._send(req, 404, "text/plain", b"not found\n")

    @staticmethod
    def _send(req, code: int, ctype: str, body: bytes) -> None:
        req.send_response(code)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.send_header("Cache-Control", "no-store")
        req.end_headers()
        req.wfile.write(body)

    def start(self) -> None:
        self.sampler.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="oms-httpd",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.sampler.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
