"""The embedded broker under concurrent publishers and consumers: every message once, whole, no consumer crash.

kombu's own filesystem channel lets a consumer take a file its publisher has created but not yet written; the
consumer then dies on an empty JSON document and the message is gone (CI saw a worker stop this way during
a redrive). These tests drive `workers.embedded` from real processes on one broker folder.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from queue import Empty

from kombu import Connection

TRANSPORT = "workers.embedded:Transport"
PER_PRODUCER = 200
PRODUCERS = 3
CONSUMERS = 2
PAD = [{"n": n, "w": "word"} for n in range(3000)]


def _connection(folder: str) -> Connection:
    return Connection(
        "filesystem://",
        transport=TRANSPORT,
        transport_options={
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": os.path.join(folder, "control"),
        },
    )


def _produce(folder: str, producer: int, start) -> None:
    start.wait()
    with _connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        for i in range(PER_PRODUCER):
            # kombu serialises the payload after creating the file: a payload that takes a while to
            # serialise holds a half-written file open long enough for a poller to find it, if it can
            queue.put({"id": f"{producer}-{i}", "pad": PAD})
        queue.close()


def _consume(folder: str, out, stop, start) -> None:
    start.wait()
    got = []
    with _connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        while True:
            try:
                message = queue.get_nowait()  # poll as fast as possible: the widest window for a race
            except Empty:
                if stop.is_set():
                    break
                continue
            got.append(message.payload["id"])
            assert message.payload["pad"] == PAD
            message.ack()
        queue.close()
    out.put(got)


def test_concurrent_publishers_and_consumers_deliver_every_message_once(tmp_path):
    folder = str(tmp_path)
    ctx = mp.get_context("spawn")
    start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    consumers = [ctx.Process(target=_consume, args=(folder, out, stop, start)) for _ in range(CONSUMERS)]
    producers = [ctx.Process(target=_produce, args=(folder, p, start)) for p in range(PRODUCERS)]
    for p in consumers + producers:
        p.start()
    try:
        start.set()
        for p in producers:
            p.join(timeout=120)
            assert p.exitcode == 0, "a publisher failed"
        stop.set()
        for p in consumers:
            p.join(timeout=60)
            assert p.exitcode == 0, "a consumer crashed (or did not stop)"
        results = [out.get(timeout=10) for _ in consumers]
    finally:
        stop.set()
        for p in consumers + producers:
            if p.is_alive():
                p.kill()

    delivered = [i for got in results for i in got]
    expected = {f"{p}-{i}" for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    assert len(delivered) == len(expected), f"{len(delivered)} deliveries for {len(expected)} messages"
    assert set(delivered) == expected
    assert all(results), "both consumers should have taken messages"
    leftovers = [n for n in os.listdir(folder) if n.endswith(".msg")]
    assert leftovers == []
    assert os.listdir(Path(folder) / ".staging") == []
    assert os.listdir(Path(folder) / ".taken") == []


def test_a_file_that_is_not_a_message_is_set_aside_and_consuming_goes_on(tmp_path, caplog):
    folder = str(tmp_path)
    with _connection(folder) as conn:
        queue = conn.SimpleQueue("jobs")
        (tmp_path / "0_junk.jobs.msg").write_bytes(b"")  # sorts first: older than anything published now
        queue.put({"id": "after-junk"})
        message = queue.get(timeout=5)
        assert message.payload == {"id": "after-junk"}
        message.ack()
        queue.close()
    assert (tmp_path / "unreadable" / "0_junk.jobs.msg").exists()
    assert [r for r in caplog.records if getattr(r, "event", None) == "broker_message_unreadable"]


def _declare(folder: str, start) -> None:
    start.wait()
    with _connection(folder) as conn:
        conn.SimpleQueue("jobs").close()


def test_processes_declaring_the_same_queue_at_once_all_start(tmp_path):
    # kombu creates an exchange table and then writes it; a second declarer could read it empty
    ctx = mp.get_context("spawn")
    for round_ in range(5):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        start = ctx.Event()
        declarers = [ctx.Process(target=_declare, args=(str(folder), start)) for _ in range(6)]
        for p in declarers:
            p.start()
        start.set()
        for p in declarers:
            p.join(timeout=60)
        assert [p.exitcode for p in declarers] == [0] * 6
        with _connection(str(folder)) as conn:
            assert [q.queue for q in conn.default_channel.get_table("jobs")] == ["jobs"]


def test_an_exchange_table_keeps_every_binding_and_loses_a_deleted_queue(tmp_path):
    # Given two queues bound to one exchange, one after the other (the table is rewritten in place)
    with _connection(str(tmp_path)) as conn:
        from kombu import Exchange, Queue

        exchange = Exchange("jobs", type="direct")
        first, second = Queue("a", exchange, routing_key="a"), Queue("b", exchange, routing_key="b")
        first(conn.default_channel).declare()
        second(conn.default_channel).declare()
        # Then the table parses and names both; deleting one queue leaves the other
        assert sorted(q.queue for q in conn.default_channel.get_table("jobs")) == ["a", "b"]
        second(conn.default_channel).delete()
        assert [q.queue for q in conn.default_channel.get_table("jobs")] == ["a"]
