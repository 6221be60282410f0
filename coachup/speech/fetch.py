"""Fetching a user-supplied `audioUrl` without letting it reach our own network (SSRF).

Checked at the API and again in the worker: https only (http only for allowlisted hosts, for local
development); every resolved address must be public (no loopback, private, link-local, metadata,
multicast, reserved, IPv4-mapped IPv6 of those); the connection goes to the checked address (no second
DNS lookup); each redirect is checked the same way (at most `MAX_REDIRECTS`); the body is capped while
streaming; the content type must be audio; connect and read timeouts bound every step. A rejection is
`AudioUrlRejected` and happens before any connection.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from coachup.errors import PermanentError, UpstreamTimeout, UpstreamUnavailable

from .types import normalize_content_type

__all__ = ["AudioUrlRejected", "FetchPolicy", "CheckedUrl", "check_url", "fetch_audio", "MAX_REDIRECTS"]

MAX_REDIRECTS = 3
_CHUNK = 64 * 1024
Resolver = Callable[[str, int], Iterable[str]]


class AudioUrlRejected(PermanentError):
    """The `audioUrl` is not one we will fetch."""

    type = "audio_url_rejected"


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch. Timeouts in seconds, sizes in bytes; `allow_hosts` are `host` or `host:port`."""

    max_bytes: int
    allow_hosts: tuple[str, ...] = ()
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0


@dataclass(frozen=True)
class CheckedUrl:
    scheme: str
    host: str
    port: int
    path: str  # path + query, as sent
    address: str  # the checked IP the connection must use


def _system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AudioUrlRejected("audioUrl host does not resolve") from None
    return [str(info[4][0]) for info in infos]


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if embedded is not None and not _public(str(embedded)):
                return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def _allowlisted(host: str, port: int, allow: tuple[str, ...]) -> bool:
    return host in allow or f"{host}:{port}" in allow


def check_url(url: object, policy: FetchPolicy, resolver: Resolver | None = None) -> CheckedUrl:
    """Validate `url` and resolve its host; `AudioUrlRejected` unless every address is acceptable."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise AudioUrlRejected("audioUrl must be a URL of at most 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AudioUrlRejected("audioUrl is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise AudioUrlRejected("audioUrl must be an https URL")
    if parts.username or parts.password:
        raise AudioUrlRejected("audioUrl must not carry credentials")
    port = port or (443 if parts.scheme == "https" else 80)
    allowed = _allowlisted(host, port, policy.allow_hosts)
    if parts.scheme == "http" and not allowed:
        raise AudioUrlRejected("audioUrl must use https")
    addresses = list((resolver or _system_resolver)(host, port))
    if not addresses:
        raise AudioUrlRejected("audioUrl host does not resolve")
    if not allowed:
        for address in addresses:
            try:
                ok = _public(address)
            except ValueError:
                ok = False
            if not ok:
                raise AudioUrlRejected("audioUrl resolves to a non-public address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CheckedUrl(parts.scheme, host, port, path, addresses[0])


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with SNI and certificate checks for the URL's host name."""

    def __init__(self, checked: CheckedUrl, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(checked.host, checked.port, timeout=timeout, context=self._tls)
        self._address = checked.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, checked: CheckedUrl, timeout: float) -> None:
        super().__init__(checked.host, checked.port, timeout=timeout)
        self._address = checked.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def fetch_audio(
    url: str, policy: FetchPolicy, *, resolver: Resolver | None = None, headers: dict | None = None
) -> tuple[bytes, str]:
    """(bytes, content type) of the audio at `url`, following checked redirects only."""
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        checked = check_url(current, policy, resolver)
        status, location, ctype, body = _get(checked, policy, headers or {})
        if status in (301, 302, 303, 307, 308):
            if not location:
                raise AudioUrlRejected("audioUrl redirect without a location")
            current = urljoin(current, location)
            continue
        if status == 404 or status == 410:
            raise PermanentError(f"audioUrl answered HTTP {status}", type="audio_url_not_found")
        if status >= 500 or status == 429:
            raise UpstreamUnavailable(f"audioUrl answered HTTP {status}")
        if status != 200:
            raise PermanentError(f"audioUrl answered HTTP {status}", type="audio_url_failed")
        return body, ctype
    raise AudioUrlRejected(f"audioUrl redirected more than {MAX_REDIRECTS} times")


def _get(checked: CheckedUrl, policy: FetchPolicy, headers: dict) -> tuple[int, str | None, str, bytes]:
    cls = _PinnedHTTPS if checked.scheme == "https" else _PinnedHTTP
    conn = cls(checked, timeout=policy.connect_timeout_s)
    try:
        conn.request("GET", checked.path, headers={"accept": "audio/*", "user-agent": "coachup-stt", **headers})
        if conn.sock is not None:
            conn.sock.settimeout(policy.read_timeout_s)
        resp = conn.getresponse()
        if resp.status != 200:  # a redirect (fetch_audio follows its location) or an error
            return resp.status, resp.getheader("location"), "", b""
        ctype = normalize_content_type(resp.getheader("content-type"))
        if ctype is None:
            raise AudioUrlRejected("audioUrl did not answer an accepted audio content type")
        length = resp.getheader("content-length")
        if length and length.isdigit() and int(length) > policy.max_bytes:
            raise AudioUrlRejected(f"audioUrl body is larger than {policy.max_bytes} bytes")
        chunks, total = [], 0
        while True:
            chunk = resp.read(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > policy.max_bytes:
                raise AudioUrlRejected(f"audioUrl body is larger than {policy.max_bytes} bytes")
            chunks.append(chunk)
        return 200, None, ctype, b"".join(chunks)
    except TimeoutError:
        raise UpstreamTimeout("audioUrl fetch timed out") from None
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise AudioUrlRejected(f"audioUrl TLS failed: {type(exc).__name__}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise UpstreamUnavailable(f"audioUrl fetch failed: {type(exc).__name__}") from None
    finally:
        conn.close()
