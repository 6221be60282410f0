"""The `audioUrl` fetcher over https against local TLS servers whose self-signed certificate the test trusts.

The DNS-rebinding defence: the connection goes to the address that was checked, so a second DNS answer
(here: the name now pointing at another local server with the same certificate) is never used. And the
answers: 404 is permanent, 5xx is retryable, a TLS failure is a rejection.
"""

from __future__ import annotations

import socket
import time

import pytest

from coachup.errors import PermanentError, UpstreamTimeout, UpstreamUnavailable
from coachup.speech.audio import tone_wav
from coachup.speech.fetch import AudioUrlRejected, FetchPolicy, fetch_audio
from tests.support.audio_host import AudioHost
from tests.support.tls import SelfSignedCert

NAME = "audio.test"


@pytest.fixture
def cert(tmp_path, monkeypatch):
    """A certificate for `audio.test`, trusted by this process's default TLS context."""
    made = SelfSignedCert([NAME], tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(made.cert_path))
    return made


@pytest.fixture
def hosts(cert):
    """The validated server on 127.0.0.1 and, on the same port, the rebinding target on 127.0.0.2."""
    good = AudioHost("127.0.0.1", tls=cert.server_context())
    rebound = AudioHost("127.0.0.2", tls=cert.server_context(), port=good.port)
    good.clips["clip.wav"] = tone_wav(300, freq_hz=440)
    rebound.clips["clip.wav"] = tone_wav(300, freq_hz=880)  # what an attacker's second answer would serve
    yield good, rebound
    good.stop()
    rebound.stop()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """`audio.test` resolves to 127.0.0.1 on its first lookup and to 127.0.0.2 on every later one."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != NAME:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def _policy(port: int) -> FetchPolicy:
    # the name is allowlisted because its checked address is loopback; the pinning applies all the same
    return FetchPolicy(max_bytes=1_000_000, allow_hosts=(f"{NAME}:{port}",))


def test_an_https_fetch_connects_to_the_checked_address_not_a_second_dns_answer(hosts, rebinding_dns):
    good, rebound = hosts
    # Given a name whose DNS answer changes after the check (DNS rebinding)
    # When its audio is fetched over https
    data, ctype = fetch_audio(f"https://{NAME}:{good.port}/clip.wav", _policy(good.port))
    # Then the bytes come from the checked address, after one lookup, and the second address was never contacted
    assert data == good.clips["clip.wav"] and ctype == "audio/wav"
    assert rebinding_dns == [NAME]
    assert good.hits == ["/clip.wav"] and rebound.hits == []


def test_a_certificate_the_client_does_not_trust_is_a_rejection(hosts, monkeypatch):
    good, _ = hosts
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/none.pem")  # the test's certificate is no longer trusted
    url = f"https://127.0.0.1:{good.port}/clip.wav"
    with pytest.raises(AudioUrlRejected) as raised:
        fetch_audio(url, FetchPolicy(max_bytes=1_000_000, allow_hosts=(f"127.0.0.1:{good.port}",)))
    assert str(raised.value) == "audioUrl TLS failed: SSLCertVerificationError"
    assert good.hits == []


def test_a_certificate_for_another_name_is_a_rejection(hosts, rebinding_dns):
    good, _ = hosts
    # Given the server's trusted certificate names audio.test, but the URL names its address
    url = f"https://127.0.0.1:{good.port}/clip.wav"
    with pytest.raises(AudioUrlRejected, match="TLS failed"):
        fetch_audio(url, FetchPolicy(max_bytes=1_000_000, allow_hosts=(f"127.0.0.1:{good.port}",)))
    assert good.hits == []


def test_a_404_is_permanent_audio_url_not_found(hosts, rebinding_dns):
    good, _ = hosts
    with pytest.raises(PermanentError) as caught:
        fetch_audio(f"https://{NAME}:{good.port}/missing.wav", _policy(good.port))
    assert caught.value.type == "audio_url_not_found" and not isinstance(caught.value, AudioUrlRejected)


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_retryable(hosts, rebinding_dns, status):
    good, _ = hosts
    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}"):
        fetch_audio(f"https://{NAME}:{good.port}/status/{status}", _policy(good.port))


def test_an_https_server_that_never_completes_the_handshake_times_out_as_retryable(cert):
    # Given a listener that accepts the connection and never says a word of TLS
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        policy = FetchPolicy(max_bytes=1000, allow_hosts=(f"{NAME}:{port}",), connect_timeout_s=0.3, read_timeout_s=0.3)
        started = time.monotonic()
        # Then the connect timeout bounds the handshake: a retryable timeout, not a hang
        with pytest.raises(UpstreamTimeout):
            fetch_audio(f"https://{NAME}:{port}/a.wav", policy, resolver=lambda host, p: ["127.0.0.1"])
    assert time.monotonic() - started < 30


def test_the_tls_server_is_asked_for_the_urls_name(hosts):
    # Given the name resolved by the caller's resolver to the good server: SNI and the Host header carry the name
    good, _ = hosts
    data, _ = fetch_audio(
        f"https://{NAME}:{good.port}/clip.wav", _policy(good.port), resolver=lambda host, port: ["127.0.0.1"]
    )
    assert data == good.clips["clip.wav"]
    assert good.headers[-1]["host"] == f"{NAME}:{good.port}"


def test_the_connection_goes_to_the_checked_address_whatever_it_is(hosts):
    # Given a resolver whose (checked) answer is the second server, 127.0.0.2
    good, rebound = hosts
    data, _ = fetch_audio(
        f"https://{NAME}:{good.port}/clip.wav", _policy(good.port), resolver=lambda host, port: ["127.0.0.2"]
    )
    # Then that is the server the bytes come from, and the other one was never asked
    assert data == rebound.clips["clip.wav"] and rebound.hits == ["/clip.wav"] and good.hits == []
