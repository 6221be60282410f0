"""The `audioUrl` fetcher refuses anything but public https (or allowlisted http) audio, before connecting."""

from __future__ import annotations

import socket
import time

import pytest

from coachup.errors import PermanentError, UpstreamTimeout, UpstreamUnavailable
from coachup.speech.audio import tone_wav
from coachup.speech.fetch import AudioUrlRejected, FetchPolicy, check_url, fetch_audio


@pytest.fixture
def no_connections(monkeypatch):
    """Any connection attempt fails the test: a rejection must come before the socket."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"connection attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


POLICY = FetchPolicy(max_bytes=1_000_000)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/a.wav",  # loopback
        "https://localhost/a.wav",  # a name that resolves to loopback
        "https://10.1.2.3/a.wav",  # private
        "https://192.168.0.10/a.wav",  # private
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "https://[::1]/a.wav",  # IPv6 loopback
        "https://[::ffff:127.0.0.1]/a.wav",  # IPv4-mapped IPv6 of loopback
        "https://[::ffff:169.254.169.254]/a.wav",  # IPv4-mapped IPv6 of metadata
        "https://[fd00::1]/a.wav",  # IPv6 unique-local
        "http://93.184.216.34/a.wav",  # plain http to a public host not allowlisted
        "ftp://93.184.216.34/a.wav",
        "https://user:pw@93.184.216.34/a.wav",  # credentials in the URL
        "not a url",
    ],
)
def test_unsafe_urls_are_rejected_without_a_connection(url, no_connections):
    with pytest.raises(AudioUrlRejected):
        fetch_audio(url, POLICY)
    assert no_connections == []


def test_a_name_resolving_to_any_private_address_is_rejected(no_connections):
    # Given a host name whose DNS answer mixes a public and a private address
    resolver = lambda host, port: ["93.184.216.34", "10.0.0.5"]  # noqa: E731
    # Then it is refused (every address must be public)
    with pytest.raises(AudioUrlRejected, match="non-public"):
        check_url("https://audio.example.com/a.wav", POLICY, resolver)


def test_a_public_https_url_passes_the_check_and_pins_the_checked_address():
    checked = check_url("https://audio.example.com/clip.wav?x=1", POLICY, lambda h, p: ["93.184.216.34"])
    assert (checked.host, checked.port, checked.path, checked.address) == (
        "audio.example.com",
        443,
        "/clip.wav?x=1",
        "93.184.216.34",
    )


def _host_policy(audio_host, **kw) -> FetchPolicy:
    return FetchPolicy(allow_hosts=(f"127.0.0.1:{audio_host.port}",), **{"max_bytes": 1_000_000, **kw})


def test_an_allowlisted_http_host_is_fetched(audio_host):
    clip = tone_wav(300)
    audio_host.clips["hello.wav"] = clip
    data, ctype = fetch_audio(audio_host.url("hello.wav"), _host_policy(audio_host))
    assert data == clip and ctype == "audio/wav"


def test_a_redirect_to_a_private_address_is_rejected_before_following(audio_host, monkeypatch):
    # Given an allowlisted host that redirects to the metadata service
    target = "http://169.254.169.254/latest/meta-data/"
    url = audio_host.url(f"redirect?to={target}")
    real_connect = socket.create_connection
    seen = []

    def spy(address, *args, **kwargs):
        seen.append(address[0])
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    # Then the redirect is refused and only the allowlisted host was ever contacted
    with pytest.raises(AudioUrlRejected):
        fetch_audio(url, _host_policy(audio_host))
    assert seen == ["127.0.0.1"]


def test_a_redirect_to_another_allowlisted_path_is_followed(audio_host):
    audio_host.clips["target.wav"] = tone_wav(200)
    url = audio_host.url("redirect?to=/target.wav")
    data, _ = fetch_audio(url, _host_policy(audio_host))
    assert data == audio_host.clips["target.wav"]


def test_an_oversized_stream_is_cut_off_at_the_cap(audio_host):
    # Given a body with no content-length that never ends
    with pytest.raises(AudioUrlRejected, match="larger than 200000"):
        fetch_audio(audio_host.url("endless.wav"), _host_policy(audio_host, max_bytes=200_000))


def test_a_declared_oversized_body_is_refused_before_reading(audio_host):
    audio_host.clips["big.wav"] = tone_wav(2000)
    with pytest.raises(AudioUrlRejected, match="larger than 1000"):
        fetch_audio(audio_host.url("big.wav"), _host_policy(audio_host, max_bytes=1000))


def test_a_non_audio_content_type_is_refused(audio_host):
    with pytest.raises(AudioUrlRejected) as raised:
        fetch_audio(audio_host.url("page.html"), _host_policy(audio_host))
    assert str(raised.value) == "audioUrl did not answer an accepted audio content type"


def test_a_silent_server_times_out_as_retryable():
    # Given a listener that accepts but never answers
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        policy = FetchPolicy(max_bytes=1000, allow_hosts=(f"127.0.0.1:{port}",), read_timeout_s=0.3)
        with pytest.raises(UpstreamTimeout):
            fetch_audio(f"http://127.0.0.1:{port}/a.wav", policy)


def test_three_redirects_are_followed_and_a_fourth_is_refused_without_a_request(audio_host):
    # Given a host whose `/hops/<n>` answers a chain of n redirects before the clip
    audio_host.clips["hop.wav"] = tone_wav(100)
    policy = _host_policy(audio_host)
    # When a chain of exactly MAX_REDIRECTS (3) is fetched, Then the clip arrives after 4 requests
    before = len(audio_host.hits)
    data, _ = fetch_audio(audio_host.url("hops/3"), policy)
    assert data == audio_host.clips["hop.wav"]
    assert audio_host.hits[before:] == ["/hops/3", "/hops/2", "/hops/1", "/hops/0"]
    # When a chain of 4 is fetched, Then it is refused after the 4th answer and the 5th request is never made
    before = len(audio_host.hits)
    with pytest.raises(AudioUrlRejected, match="more than 3"):
        fetch_audio(audio_host.url("hops/4"), policy)
    assert audio_host.hits[before:] == ["/hops/4", "/hops/3", "/hops/2", "/hops/1"]


def test_a_body_of_several_read_chunks_arrives_whole(audio_host):
    # Given a clip longer than one 64 KiB read
    audio_host.clips["long.wav"] = tone_wav(5000)
    assert len(audio_host.clips["long.wav"]) > 2 * 64 * 1024
    data, _ = fetch_audio(audio_host.url("long.wav"), _host_policy(audio_host))
    assert data == audio_host.clips["long.wav"]


def test_a_url_of_2048_characters_passes_and_one_more_is_rejected(no_connections):
    resolver = lambda host, port: ["93.184.216.34"]  # noqa: E731
    base = "https://audio.example.com/"
    longest = base + "a" * (2048 - len(base))
    assert check_url(longest, POLICY, resolver).path == "/" + "a" * (2048 - len(base))
    with pytest.raises(AudioUrlRejected, match="2048"):
        check_url(longest + "a", POLICY, resolver)


def test_a_body_of_exactly_the_cap_is_fetched_and_one_byte_more_is_refused(audio_host):
    clip = tone_wav(100)
    audio_host.clips["exact.wav"] = clip
    for path in ("exact.wav", "stream/exact.wav"):  # declared by content-length, and counted while streaming
        data, _ = fetch_audio(audio_host.url(path), _host_policy(audio_host, max_bytes=len(clip)))
        assert data == clip, path
        with pytest.raises(AudioUrlRejected, match=f"larger than {len(clip) - 1} bytes"):
            fetch_audio(audio_host.url(path), _host_policy(audio_host, max_bytes=len(clip) - 1))


def test_a_declared_oversized_body_is_refused_without_waiting_for_it(audio_host):
    # Given a server that declares a 1 GB body and then sends nothing, and a long read timeout
    policy = _host_policy(audio_host, max_bytes=1000, read_timeout_s=60)
    started = time.monotonic()
    # Then the declared length alone refuses it, long before the read timeout
    with pytest.raises(AudioUrlRejected, match="larger than 1000"):
        fetch_audio(audio_host.url("declared-huge.wav"), policy)
    assert time.monotonic() - started < 20


def test_the_read_timeout_bounds_a_silent_server_whatever_the_connect_timeout():
    # Given a listener that accepts but never answers, a long connect timeout and a short read timeout
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        policy = FetchPolicy(
            max_bytes=1000, allow_hosts=(f"127.0.0.1:{port}",), connect_timeout_s=120, read_timeout_s=0.3
        )
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as raised:
            fetch_audio(f"http://127.0.0.1:{port}/a.wav", policy)
    # Then the read timeout is the one that ended the wait (generous bound for a loaded machine)
    assert time.monotonic() - started < 30
    assert str(raised.value) == "audioUrl fetch timed out"


def test_the_connect_timeout_bounds_a_host_that_never_accepts():
    # Given a listener whose accept queue is full: the kernel drops the next SYN, so a connect never completes
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = [socket.create_connection(("127.0.0.1", port), timeout=5)]
        try:
            policy = FetchPolicy(
                max_bytes=1000, allow_hosts=(f"127.0.0.1:{port}",), connect_timeout_s=0.3, read_timeout_s=120
            )
            started = time.monotonic()
            # Then the connect timeout ends the attempt as a retryable timeout
            with pytest.raises(UpstreamTimeout):
                fetch_audio(f"http://127.0.0.1:{port}/a.wav", policy)
            assert time.monotonic() - started < 30
        finally:
            for sock in queued:
                sock.close()


def test_a_refused_connection_is_retryable_and_names_only_the_error_class():
    with socket.socket() as held:  # a port this test holds without listening: connection refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        policy = FetchPolicy(max_bytes=1000, allow_hosts=(f"127.0.0.1:{port}",))
        with pytest.raises(UpstreamUnavailable) as raised:
            fetch_audio(f"http://127.0.0.1:{port}/a.wav", policy)
    assert str(raised.value) == "audioUrl fetch failed: ConnectionRefusedError"


def test_a_stream_over_the_cap_is_refused_as_it_arrives_not_when_it_ends(audio_host):
    # Given a server that sends 300 kB with no content-length and then holds the connection open
    policy = _host_policy(audio_host, max_bytes=200_000, read_timeout_s=60)
    started = time.monotonic()
    # Then the cap refuses it once the bytes read pass it, without waiting for the end of the body
    with pytest.raises(AudioUrlRejected) as raised:
        fetch_audio(audio_host.url("stall-after/300000"), policy)
    assert str(raised.value) == "audioUrl body is larger than 200000 bytes"
    assert time.monotonic() - started < 30


def test_the_request_asks_for_audio_names_the_client_and_carries_the_callers_headers(audio_host):
    audio_host.clips["h.wav"] = tone_wav(50)
    fetch_audio(audio_host.url("h.wav"), _host_policy(audio_host), headers={"x-request-id": "req-1"})
    sent = audio_host.headers[-1]
    assert sent["accept"] == "audio/*" and sent["user-agent"] == "coachup-stt" and sent["x-request-id"] == "req-1"


def test_the_given_resolver_answers_every_hop_and_the_host_name_is_sent(audio_host):
    # Given a name only the caller's resolver knows, allowlisted, redirecting to itself by absolute URL
    audio_host.clips["named.wav"] = tone_wav(80)
    name = f"audio.internal:{audio_host.port}"
    resolver = lambda host, port: ["127.0.0.1"] if host == "audio.internal" else []  # noqa: E731
    policy = FetchPolicy(max_bytes=1_000_000, allow_hosts=(name,))
    url = f"http://{name}/redirect?to=http://{name}/named.wav"
    # Then both hops are resolved by it, and the server is asked for the name, not the address
    data, _ = fetch_audio(url, policy, resolver=resolver)
    assert data == audio_host.clips["named.wav"]
    assert [h["host"] for h in audio_host.headers[-2:]] == [name, name]


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (404, PermanentError, "audio_url_not_found"),
        (410, PermanentError, "audio_url_not_found"),
        (403, PermanentError, "audio_url_failed"),
        (204, PermanentError, "audio_url_failed"),
        (429, UpstreamUnavailable, None),
        (500, UpstreamUnavailable, None),
        (503, UpstreamUnavailable, None),
    ],
)
def test_each_answer_status_is_its_own_error(audio_host, status, error, kind):
    with pytest.raises(error) as raised:
        fetch_audio(audio_host.url(f"status/{status}"), _host_policy(audio_host))
    assert not isinstance(raised.value, AudioUrlRejected)
    assert str(status) in str(raised.value)
    if kind is not None:
        assert raised.value.type == kind
    else:
        assert not isinstance(raised.value, PermanentError)  # retryable


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_without_a_location_is_refused(audio_host, status):
    with pytest.raises(AudioUrlRejected) as raised:
        fetch_audio(audio_host.url(f"status/{status}"), _host_policy(audio_host))
    assert str(raised.value) == "audioUrl redirect without a location"


PUBLIC = lambda host, port: ["93.184.216.34"]  # noqa: E731


def test_the_check_normalises_host_port_and_path(no_connections):
    checked = check_url("https://AUDIO.Example.COM", POLICY, PUBLIC)
    assert (checked.scheme, checked.host, checked.port, checked.path) == ("https", "audio.example.com", 443, "/")
    assert check_url("https://audio.example.com:8443/a?b=1&c", POLICY, PUBLIC).port == 8443
    assert check_url("https://audio.example.com/a?b=1&c", POLICY, PUBLIC).path == "/a?b=1&c"
    # plain http, allowlisted by host alone, defaults to port 80
    http = check_url("http://audio.dev/a.wav", FetchPolicy(max_bytes=1, allow_hosts=("audio.dev",)), PUBLIC)
    assert (http.scheme, http.port) == ("http", 80)
    # an allowlist entry with a port admits that port only
    with pytest.raises(AudioUrlRejected, match="must use https"):
        check_url("http://audio.dev:8080/a.wav", FetchPolicy(max_bytes=1, allow_hosts=("audio.dev:9090",)), PUBLIC)


TOO_LONG = "audioUrl must be a URL of at most 2048 characters"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, TOO_LONG),
        (42, TOO_LONG),
        ("", TOO_LONG),
        ("https://audio.example.com:99999/a.wav", "audioUrl is not a valid URL"),
        ("https:///a.wav", "audioUrl must be an https URL"),
        ("gopher://audio.example.com/a.wav", "audioUrl must be an https URL"),
        ("https://user@audio.example.com/a.wav", "audioUrl must not carry credentials"),
        ("https://:pw@audio.example.com/a.wav", "audioUrl must not carry credentials"),
        ("http://audio.example.com/a.wav", "audioUrl must use https"),
    ],
)
def test_each_malformed_url_is_refused_for_its_own_reason(url, message, no_connections):
    # the message is the API's answer to the client (web/routes/speech.py), so it is checked whole
    with pytest.raises(AudioUrlRejected) as raised:
        check_url(url, POLICY, PUBLIC)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo whose client is 10.0.0.1
        "ff0e::1",  # global-scope multicast
        "224.0.0.1",  # IPv4 multicast
        "fe80::1%eth0",  # scoped link-local
        "not-an-address",
    ],
)
def test_addresses_that_wrap_or_are_not_public_unicast_are_refused(address, no_connections):
    with pytest.raises(AudioUrlRejected) as raised:
        check_url("https://audio.example.com/a.wav", POLICY, lambda host, port: [address])
    assert str(raised.value) == "audioUrl resolves to a non-public address"


def test_a_6to4_address_wrapping_a_public_address_passes(no_connections):
    # 2002:5db8:d822::1 wraps 93.184.216.34: the embedded check refuses only non-public embeddings
    assert check_url("https://audio.example.com/", POLICY, lambda h, p: ["2002:5db8:d822::1"]).address == (
        "2002:5db8:d822::1"
    )


def test_public_ipv6_passes_and_a_name_with_no_address_is_refused(no_connections):
    assert check_url("https://audio.example.com/", POLICY, lambda h, p: ["2606:4700::6810:84e5"]).address == (
        "2606:4700::6810:84e5"
    )
    with pytest.raises(AudioUrlRejected) as raised:
        check_url("https://audio.example.com/", POLICY, lambda h, p: [])
    assert str(raised.value) == "audioUrl host does not resolve"


def test_a_name_the_system_cannot_resolve_is_refused(no_connections):
    with pytest.raises(AudioUrlRejected) as raised:
        check_url("https://no-such-host.invalid/a.wav", POLICY)  # .invalid never resolves (RFC 6761)
    assert str(raised.value) == "audioUrl host does not resolve"


def test_an_allowlisted_host_may_resolve_to_a_private_address(no_connections):
    policy = FetchPolicy(max_bytes=1, allow_hosts=("audio.dev",))
    assert check_url("https://audio.dev/a.wav", policy, lambda h, p: ["10.0.0.7"]).address == "10.0.0.7"
