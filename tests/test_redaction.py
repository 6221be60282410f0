"""The one door for identifiers and free text (coachup/redaction.py): keyed hashes and scrubbed messages.

What a log line, a metric label or a dead letter may carry rests on these two functions, so each promise is
checked on its own value: the keyed hash is HMAC-SHA256 of the secret (not a plain hash anyone can recompute),
prefixed by kind, 16 hex characters; every credential form is scrubbed, and the cap holds to the character.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from coachup.redaction import HASH_PREFIXES, Hasher, scrub

SECRET = "redaction-test-secret"


def _hmac16(secret: str, value: str) -> str:
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


def test_a_digest_is_the_first_16_hex_chars_of_hmac_sha256_under_the_secret():
    hasher = Hasher(SECRET)
    assert hasher.digest("user-1") == _hmac16(SECRET, "user-1")
    # non-ASCII ids hash their UTF-8 bytes, as every other hop that joins on them does
    assert hasher.digest("usér-ü") == _hmac16(SECRET, "usér-ü")


def test_the_hash_depends_on_the_secret_and_the_value_and_is_stable():
    a, b = Hasher(SECRET), Hasher(SECRET + "x")
    assert a.digest("user-1") == a.digest("user-1") == Hasher(SECRET).digest("user-1")
    assert a.digest("user-1") != b.digest("user-1")
    assert a.digest("user-1") != a.digest("user-2")
    # one digest does not leave state behind for the next (each copies the keyed state)
    first = a.digest("v")
    a.digest("something else")
    assert a.digest("v") == first


@pytest.mark.parametrize("kind", sorted(HASH_PREFIXES))
def test_hash_prefixes_the_digest_with_its_kind(kind):
    hasher = Hasher(SECRET)
    assert hasher.hash(kind, "id-1") == HASH_PREFIXES[kind] + _hmac16(SECRET, "id-1")


def test_the_prefixes_are_the_reference_ones():
    assert HASH_PREFIXES == {"user": "u:", "session": "s:", "tracked_skill": "ts:", "group": "g:", "object": "o:"}


def test_session_and_group_use_their_own_prefix():
    hasher = Hasher(SECRET)
    assert hasher.session("sess-1") == "s:" + _hmac16(SECRET, "sess-1")
    assert hasher.group("grp-1") == "g:" + _hmac16(SECRET, "grp-1")
    assert hasher.session(None) is None and hasher.group("") is None


@pytest.mark.parametrize("value", [None, ""])
def test_no_value_hashes_to_none_not_to_the_hash_of_nothing(value):
    assert Hasher(SECRET).hash("user", value) is None


def test_an_unknown_kind_is_an_error_not_an_unprefixed_hash():
    with pytest.raises(KeyError):
        Hasher(SECRET).hash("tenant", "x")


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        ("redis://user:pa55@cache:6379/0 refused", "redis://***@cache:6379/0 refused"),
        # the usual Redis form: no user, only a password
        ("redis://:pa55@cache:6379", "redis://***@cache:6379"),
        ("sqs://AKIAX:s3cr3t@localhost", "sqs://***@localhost"),
        ("postgresql+psycopg://app@db/x", "postgresql+psycopg://***@db/x"),
        ("see https://example.com/a@b", "see https://example.com/a@b"),  # an @ after the host is not a login
        ("sent Bearer eyJhbGciOi.J9.x-y_z~+/= twice", "sent Bearer *** twice"),
        ("Authorization: Bearer eyJhbGciOi.J9", "Authorization=*** ***"),
        ("header basic dXNlcjpwYXNz", "header basic ***"),
        ("key sk-abcdefgh1234 used", "key *** used"),
        ("key pk-ABCDEFGH_-12", "key ***"),
        ("key rk-12345678", "key ***"),
        ("sk-short is not a key", "sk-short is not a key"),  # fewer than 8 characters after the prefix
        ("password=hunter2 next", "password=*** next"),
        ("PASSWD: hunter2", "PASSWD=***"),
        ("api_key=abc", "api_key=***"),
        ("api-key = abc", "api-key=***"),
        ("apikey:abc", "apikey=***"),
        ("secret=s token=t", "secret=*** token=***"),
        ("authorization=xyz", "authorization=***"),
        ("plain words stay", "plain words stay"),
    ],
)
def test_scrub_removes_every_credential_form(raw, scrubbed):
    assert scrub(raw) == scrubbed


def test_scrub_takes_any_object_as_its_text():
    assert scrub(ValueError("token=abc")) == "token=***"
    assert scrub(42) == "42"


def test_scrub_caps_the_length_to_the_character():
    assert scrub("a" * 300) == "a" * 300  # exactly at the cap: untouched
    capped = scrub("a" * 301)
    assert capped == "a" * 299 + "…" and len(capped) == 300
    assert scrub("b" * 50, limit=10) == "b" * 9 + "…"
    assert scrub("b" * 10, limit=10) == "b" * 10


def test_scrub_caps_after_removing_credentials():
    # the credential is removed first, so a secret near the cap cannot survive as a truncated fragment
    text = "x" * 280 + " password=" + "s" * 40
    assert scrub(text) == "x" * 280 + " password=***"
