"""A local identity provider for the auth tests: keys generated in the test, a JWKS served over HTTP."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["JwksServer"]


class JwksServer:
    """Serves `/jwks.json` with one RSA key (kid `k1`) and counts the fetches; `token()` signs with it."""

    def __init__(self, *, issuer: str = "https://idp.test/", audience: str = "coachup-api") -> None:
        self.issuer, self.audience = issuer, audience
        self.kid = "k1"
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.public_jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}
        self.fetches = 0
        # what the server answers instead of its one key: another key set, or a raw (status, body)
        self.served_keys: list[dict] | None = None
        self.raw_answer: tuple[int, bytes] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.fetches += 1
                keys = server.served_keys if server.served_keys is not None else [server.public_jwk]
                status, body = server.raw_answer or (200, json.dumps({"keys": keys}).encode())
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"

    def env(self) -> dict[str, str]:
        return {"AUTH_JWKS_URL": self.url, "AUTH_ISSUER": self.issuer, "AUTH_AUDIENCE": self.audience}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {
            "sub": "user-under-test",
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, kid: str | None = None, headers: dict | None = None, **claims) -> str:
        return jwt.encode(
            self.claims(**claims),
            self.private_key,
            algorithm="RS256",
            headers={"kid": kid or self.kid, **(headers or {})},
        )

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
