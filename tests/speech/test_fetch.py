"""The `audioUrl` fetcher refuses anything but public https (or allowlisted http) audio, before connecting."""

from __future__ import annotations

import socket

import pytest

from coachup.errors import UpstreamTimeout
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
    with pytest.raises(AudioUrlRejected, match="content type"):
        fetch_audio(audio_host.url("page.html"), _host_policy(audio_host))


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
