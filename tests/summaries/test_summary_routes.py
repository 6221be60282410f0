"""`POST /api/v1/session-summary/generate` and `GET /api/v1/session-summary` on SQLite and PostgreSQL:
the front end's contract (row G and the existing API's pinned test), versions, ETag / If-None-Match, empty
summaries, validation, and the database invariant that keeps two writers from racing to one version."""

from __future__ import annotations

import threading

import pytest

from coachup.settings import load_settings
from coachup.store import create_store
from coachup.store.summaries import SummaryStore
from tests.conftest import TEST_HASH_SECRET

MESSAGES = [
    {"role": "user", "content": "Summarize: user set a goal to improve clarity in weekly stand-ups."},
    {"role": "assistant", "content": "Coach suggested enunciation and pacing for the opening sentence."},
]


@pytest.fixture
def client(store_url, tmp_path):
    from web import create_app

    settings = load_settings(
        {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_DATABASE_URL": store_url, "COACHUP_HASH_SECRET": TEST_HASH_SECRET}
    )
    app = create_app(settings, configure_logs=False)
    return app.test_client()


def test_generate_then_get_the_latest_version(client):
    # the existing API's pinned test, in our terms
    r1 = client.post(
        "/api/v1/session-summary/generate",
        json={"sessionId": "sess-sum-1", "prevSummary": "", "messages": MESSAGES, "tokenBudget": 600},
    )
    assert r1.status_code == 200, r1.get_json()
    body = r1.get_json()
    assert body["sessionId"] == "sess-sum-1" and body["version"] == 1 and isinstance(body["updatedAt"], int)
    assert "improve clarity" in body["text"] and "enunciation and pacing" in body["text"]
    assert "X-Summary-Empty" not in r1.headers
    r2 = client.get("/api/v1/session-summary", query_string={"sessionId": "sess-sum-1"})
    assert r2.status_code == 200
    got = r2.get_json()
    assert (got["version"], got["updatedAt"], got["summaryText"]) == (1, body["updatedAt"], body["text"])
    assert got["sessionId"] == "sess-sum-1"


def test_versions_grow_and_the_etag_follows_them(client):
    url, q = "/api/v1/session-summary", {"sessionId": "sess-sum-2"}
    none = client.get(url, query_string=q)
    assert none.status_code == 200 and none.get_json()["version"] == 0 and none.headers["ETag"] == '"v0"'
    client.post(url + "/generate", json={"sessionId": "sess-sum-2", "messages": MESSAGES})
    first = client.get(url, query_string=q)
    etag = first.headers["ETag"]
    assert etag == '"v1"'
    cached = client.get(url, query_string=q, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b"" and cached.headers["ETag"] == etag
    assert client.get(url, query_string=q, headers={"If-None-Match": 'W/"v1"'}).status_code == 304
    more = [{"role": "user", "content": "Next week I present the budget to the board of directors."}]
    second = client.post(url + "/generate", json={"sessionId": "sess-sum-2", "messages": more}).get_json()
    assert second["version"] == 2
    assert "improve clarity" in second["text"], "the previous version rolls into the next"
    fresh = client.get(url, query_string=q, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] == '"v2"' and fresh.get_json()["version"] == 2


def test_nothing_to_summarise_answers_the_empty_header_and_stores_nothing(client):
    r = client.post(
        "/api/v1/session-summary/generate",
        json={"sessionId": "sess-sum-3", "messages": [{"role": "user", "content": "ok"}]},
    )
    assert r.status_code == 200 and r.headers["X-Summary-Empty"] == "1"
    assert r.get_json()["text"] == "" and r.get_json()["status"] == "empty"
    assert client.get("/api/v1/session-summary", query_string={"sessionId": "sess-sum-3"}).get_json()["version"] == 0


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"messages": MESSAGES}, 400, "sessionId is required"),
        ({"sessionId": "s", "messages": "text"}, 400, "messages must be a JSON array"),
        ({"sessionId": "s", "messages": [{"role": "user"}]}, 400, "messages[0].content"),
        ({"sessionId": "s", "messages": MESSAGES, "tokenBudget": "lots"}, 400, "tokenBudget must be an integer"),
        ({"sessionId": "s", "prevSummary": 3}, 400, "prevSummary must be a string"),
    ],
)
def test_bad_input_gets_a_json_400(client, body, status, needle):
    r = client.post("/api/v1/session-summary/generate", json=body)
    assert r.status_code == status and needle in r.get_json()["error"]["message"], r.get_json()
    assert client.get("/api/v1/session-summary").status_code == 400


def test_two_writers_never_share_a_version(store_url):
    # Given 8 writers that all read version 0 and race to write the next one, three rounds
    sums = SummaryStore(create_store(store_url))
    for round_ in range(3):
        latest = sums.latest("race")
        won: list = []
        barrier = threading.Barrier(8)

        def write(i, latest=latest, won=won, barrier=barrier, round_=round_):
            barrier.wait()
            record = sums.add_version(
                "race", f"r{round_} w{i}", after=latest, turns_covered=0, source="api", provider="p", model="m"
            )
            if record is not None:
                won.append(record)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Then exactly one wins each version, and versions stay contiguous
        assert len(won) == 1 and won[0].version == round_ + 1
        assert sums.latest("race").text == won[0].text
