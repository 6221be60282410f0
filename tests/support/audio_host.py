"""A local HTTP server hosting audio for `audioUrl` tests, including hostile answers.

Paths: `/<name>.wav` serves a registered clip; `/redirect?to=<url>` answers 302; `/hops/<n>` redirects to
`/hops/<n-1>` and `/hops/0` serves the clip `hop.wav` (a chain of n redirects); `/status/<code>` answers that
status; `/endless.wav` streams audio without a content-length until the client stops; `/stream/<name>.wav`
serves a clip without a content-length; `/stall-after/<n>` sends n bytes (no content-length) and then holds the
connection until the client hangs up; `/declared-huge.wav` declares a 1 GB body, sends none and holds the
connection until the client hangs up; `/page.html` is not audio. `hits` counts requests, `headers` keeps each
request's headers. `AudioHost(address, tls=context)` listens on another loopback address, or over TLS.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class AudioHost:
    def __init__(self, address: str = "127.0.0.1", tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.clips: dict[str, bytes] = {}
        self.hits: list[str] = []
        self.headers: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                owner.hits.append(parts.path)
                owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                try:
                    if parts.path == "/redirect":
                        self.send_response(302)
                        self.send_header("location", parse_qs(parts.query)["to"][0])
                        self.send_header("content-length", "0")
                        self.end_headers()
                    elif parts.path.startswith("/hops/"):
                        left = int(parts.path.rsplit("/", 1)[1])
                        if left > 0:
                            self.send_response(302)
                            self.send_header("location", f"/hops/{left - 1}")
                            self.send_header("content-length", "0")
                            self.end_headers()
                        else:
                            self._send(200, owner.clips["hop.wav"], "audio/wav")
                    elif parts.path.startswith("/status/"):
                        self._send(int(parts.path.rsplit("/", 1)[1]), b"", "text/plain")
                    elif parts.path == "/endless.wav":
                        self.send_response(200)
                        self.send_header("content-type", "audio/wav")
                        self.send_header("connection", "close")
                        self.end_headers()
                        chunk = b"\0" * 65536
                        for _ in range(4096):  # 256 MiB at most; the client hangs up long before
                            self.wfile.write(chunk)
                    elif parts.path.startswith("/stream/"):
                        self.send_response(200)
                        self.send_header("content-type", "audio/wav")
                        self.send_header("connection", "close")
                        self.end_headers()
                        self.wfile.write(owner.clips[parts.path.removeprefix("/stream/")])
                        self.close_connection = True
                    elif parts.path.startswith("/stall-after/"):
                        self.send_response(200)
                        self.send_header("content-type", "audio/wav")
                        self.end_headers()
                        self.wfile.write(b"\0" * int(parts.path.rsplit("/", 1)[1]))
                        self.wfile.flush()
                        self.rfile.read(1)  # returns when the client hangs up
                        self.close_connection = True
                    elif parts.path == "/declared-huge.wav":
                        self.send_response(200)
                        self.send_header("content-type", "audio/wav")
                        self.send_header("content-length", str(10**9))
                        self.end_headers()
                        self.wfile.flush()
                        self.rfile.read(1)  # returns when the client hangs up
                        self.close_connection = True
                    elif parts.path == "/page.html":
                        self._send(200, b"<html></html>", "text/html")
                    elif parts.path.lstrip("/") in owner.clips:
                        self._send(200, owner.clips[parts.path.lstrip("/")], "audio/wav")
                    else:
                        self._send(404, b"", "text/plain")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status, body, ctype):
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
