"""The threads that run chat pumps (`coachup.chat.stream._PumpThreads`): a stream takes an idle thread instead of
starting one (a thread start waits for the GIL, on the stream's time to first token), concurrent streams each get
their own, idle threads end after a while, and a forked process starts with none of its parent's."""

from __future__ import annotations

import os
import threading

from coachup.chat import stream as chat_stream
from coachup.chat.stream import _PumpThreads
from tests.support.wait import wait_until


def _pump_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name == "chat-pump" and t.ident is not None}


def test_a_stream_after_another_runs_on_the_thread_the_first_left_idle():
    pool = _PumpThreads()
    ran_on: list[int] = []
    done = threading.Event()
    pool.run(lambda: (ran_on.append(threading.get_ident()), done.set()))
    assert done.wait(10)
    wait_until(lambda: pool._idle == 1, timeout=10, what="the first thread back in the pool")
    before = _pump_threads()
    done.clear()
    pool.run(lambda: (ran_on.append(threading.get_ident()), done.set()))
    assert done.wait(10)
    assert ran_on[0] == ran_on[1], "the second pump ran on a new thread"
    assert _pump_threads() == before


def test_concurrent_streams_each_get_a_thread():
    pool = _PumpThreads()
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()

    def pump():
        with lock:
            running.append(threading.get_ident())
        release.wait(30)

    for _ in range(5):
        pool.run(pump)
    wait_until(lambda: len(running) == 5, timeout=10, what="five pumps running at once")
    assert len(set(running)) == 5
    release.set()
    wait_until(lambda: pool._idle == 5, timeout=10, what="all five threads idle")


def test_an_idle_thread_ends_after_the_idle_time(monkeypatch):
    monkeypatch.setattr(chat_stream, "_IDLE_S", 0.2)
    pool = _PumpThreads()
    done = threading.Event()
    ident: list[int] = []
    pool.run(lambda: (ident.append(threading.get_ident()), done.set()))
    assert done.wait(10)
    wait_until(lambda: ident[0] not in _pump_threads(), timeout=10, what="the idle pump thread to end")
    assert pool._idle == 0
    # and the pool still serves: the next stream starts a thread again
    done.clear()
    pool.run(done.set)
    assert done.wait(10)


def test_a_forked_process_runs_pumps_on_threads_of_its_own():
    """A child of fork has none of its parent's threads: a pool that still counted the parent's idle thread
    would queue the child's pump for a thread that does not exist, and the stream would never start."""
    done = threading.Event()
    chat_stream._threads.run(done.set)
    assert done.wait(10)
    wait_until(lambda: chat_stream._threads._idle >= 1, timeout=10, what="an idle pump thread in this process")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run one pump, report, leave without pytest's teardown
        try:
            ran = threading.Event()
            chat_stream._threads.run(ran.set)
            os.write(write, b"ran" if ran.wait(10) else b"hung")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 16) == b"ran"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
