"""A real browser reads the stream: headless Chromium opens an `EventSource` on a tiny page served by the test,
through a pass-through proxy like the front end's `/api/chat` route, and receives the whole reply, the named
`model` event and `[DONE]`."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.chat.test_chat_stream import _expected_reply
from tests.support.services import in_ci
from tests.support.wait import wait_until
from tests.workers.test_flower import CHROMIUM_FLAGS

PROMPT = "I think maybe I should slow down when I explain our pricing to new customers."
PAGE = """<!doctype html><html><body><pre id="out">waiting</pre><script>
const es = new EventSource('/api/chat?prompt=' + encodeURIComponent(%(prompt)s) + '&sessionId=browser-1');
let acc = '', model = null, named = [];
es.addEventListener('prompt', () => named.push('prompt'));
es.addEventListener('model', (e) => { named.push('model'); model = JSON.parse(e.data); });
es.onmessage = (e) => {
  if (e.data === '[DONE]') {
    es.close();
    document.getElementById('out').textContent = acc;
    fetch('/result', {method: 'POST', body: JSON.stringify({reply: acc, model: model, named: named})});
    return;
  }
  acc += e.data;
};
es.onerror = () => { es.close(); fetch('/result', {method: 'POST', body: JSON.stringify({error: true, reply: acc})}); };
</script></body></html>"""


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if in_ci():
            pytest.fail("chromium missing in CI (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed")
    return exe


class _PageAndProxy:
    """Serves the page, proxies `/api/chat?...` to the API's `/chat/stream?...` chunk by chunk (as the front
    end's route handler does), and records what the page posts back."""

    def __init__(self, api_port: int) -> None:
        self.result: dict | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/":
                    body = (PAGE % {"prompt": json.dumps(PROMPT)}).encode()
                    self.send_response(200)
                    self.send_header("content-type", "text/html; charset=utf-8")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                query = urlsplit(self.path).query
                upstream = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
                upstream.request("GET", f"/chat/stream?{query}", headers={"accept": "text/event-stream"})
                resp = upstream.getresponse()
                self.send_response(resp.status)
                for name in ("content-type", "x-chat-provider", "x-chat-model", "cache-control"):
                    if resp.getheader(name):
                        self.send_header(name, resp.getheader(name))
                self.end_headers()
                while chunk := resp.read1(65536):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                upstream.close()

            def do_POST(self) -> None:  # noqa: N802
                outer.result = json.loads(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_headless_chromium_receives_the_whole_reply_through_event_source(api):
    chromium = _chromium()
    page = _PageAndProxy(api.port)
    profile = tempfile.mkdtemp(prefix="coachup-chromium-")
    proc = subprocess.Popen(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=30000",
            "--dump-dom",
            page.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        result = wait_until(lambda: page.result, timeout=90, what="the page to post the reply it read")
        dom, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        page.stop()
        shutil.rmtree(profile, ignore_errors=True)
    assert not result.get("error"), result
    assert result["reply"] == _expected_reply(PROMPT, [])
    assert result["named"] == ["prompt", "model"]
    assert result["model"] == {"provider": "offline", "model": "coach-offline-v1"}
    assert result["reply"].split()[0] in dom  # the page rendered it
