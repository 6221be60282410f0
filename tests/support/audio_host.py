"""A local HTTP server hosting audio for `audioUrl` tests, including hostile answers.

Paths: `/<name>.wav` serves a registered clip; `/redirect?to=<url>` answers 302; `/endless.wav` streams
audio without a content-length until the client stops; `/page.html` is not audio. `hits` counts requests.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class AudioHost:
    def __init__(self) -> None:
        self.clips: dict[str, bytes] = {}
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                owner.hits.append(parts.path)
                try:
                    if parts.path == "/redirect":
                        self.send_response(302)
                        self.send_header("location", parse_qs(parts.query)["to"][0])
                        self.send_header("content-length", "0")
                        self.end_headers()
                    elif parts.path == "/endless.wav":
                        self.send_response(200)
                        self.send_header("content-type", "audio/wav")
                        self.send_header("connection", "close")
                        self.end_headers()
                        chunk = b"\0" * 65536
                        for _ in range(4096):  # 256 MiB at most; the client hangs up long before
                            self.wfile.write(chunk)
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
