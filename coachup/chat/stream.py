"""One chat stream: the model's `stream()` runs on a pump thread; the consumer (the HTTP response) waits on
its queue with deadlines, so it can send heartbeats while the model thinks, end the stream when no first
token comes in time, and stop the model when the client goes away.

`ChatStream.events()` yields `(kind, value)`: `text` (a run of reply text), `heartbeat`, then exactly one
terminal item: `done`, `timeout` (no first token in time) or `error` (a `CoachupError`). Closing the
generator early (the client disconnected) cancels the pump, which stops the provider call at its next chunk.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from coachup.errors import CoachupError, UpstreamTimeout

__all__ = ["ChatStream", "StreamOutcome", "ProviderCall"]

_DRAIN_MAX = 256  # chunks merged into one write when the consumer fell behind


@dataclass
class ProviderCall:
    """What the pump saw of the model call (set on the pump thread)."""

    seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    chunks: int = 0
    model: str | None = None  # as the provider reported it
    error: BaseException | None = None
    cancelled: bool = False


@dataclass
class StreamOutcome:
    """What the client saw. `outcome`: completed | disconnect | timeout | error."""

    outcome: str = "completed"
    first_token_s: float | None = None
    duration_s: float = 0.0
    chunks: int = 0
    chars: int = 0
    error_type: str | None = None
    call: ProviderCall = field(default_factory=ProviderCall)


_IDLE_S = 60.0  # a pump thread idle this long ends (the pool shrinks back after a burst of streams)


class _PumpThreads:
    """The threads that run pumps, kept for the next stream when one ends.

    Starting a thread per stream cost each stream a thread's creation and, worse, a wait: `Thread.start()`
    blocks until the new thread has taken the GIL once, and with hundreds of streams and intake threads busy
    that wait is a switch interval or more, on the stream's time to first token. An idle thread here takes the
    next pump from a queue instead; a new one starts only when none is idle. Daemon threads, as before: a pump
    stuck in a provider call never holds up the process's exit."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work (or about to)

    def run(self, fn: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._work.put(fn)
        if spawn:
            threading.Thread(target=self._serve, name="chat-pump", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                fn = self._work.get(timeout=_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # still counted idle: no `run` has counted on this thread, so it may end
                        self._idle -= 1
                        return
                continue  # a `run` counted on this thread as it timed out: its work is in the queue
            # `_Pump._run` hands the model's errors to its consumer; should anything else raise (an observer's
            # bug), this thread ends uncounted and threading's excepthook reports it, as a per-stream thread did
            fn()
            del fn  # an idle thread holds no finished stream (its messages, its queue) for up to _IDLE_S
            with self._lock:
                self._idle += 1


_threads = _PumpThreads()


def _after_fork() -> None:
    global _threads
    _threads = _PumpThreads()  # a forked child has none of the parent's threads, idle or not


os.register_at_fork(after_in_child=_after_fork)


class _Pump:
    def __init__(self, runnable, messages, on_done: Callable[[ProviderCall], None] | None) -> None:
        self.runnable, self.messages, self.on_done = runnable, messages, on_done
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self.call = ProviderCall()
        self.context = contextvars.copy_context()  # the request's context (ids for log lines) on the pump thread

    def start(self) -> None:
        _threads.run(lambda: self.context.run(self._run))

    def _run(self) -> None:
        started = time.monotonic()
        call = self.call
        try:
            stream = iter(self.runnable.stream(self.messages))
            try:
                for chunk in stream:
                    usage = getattr(chunk, "usage_metadata", None) or {}
                    call.tokens_in += int(usage.get("input_tokens") or 0)
                    call.tokens_out += int(usage.get("output_tokens") or 0)
                    call.model = (getattr(chunk, "response_metadata", None) or {}).get("model_name") or call.model
                    if self.cancelled.is_set():
                        call.cancelled = True
                        break
                    text = chunk.content if isinstance(chunk.content, str) else ""
                    if text:
                        call.chunks += 1
                        self.queue.put(("text", text))
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()  # closes the provider's HTTP response: no more tokens are generated for nobody
            self.queue.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which types it
            call.error = exc
            self.queue.put(("error", exc))
        finally:
            call.seconds = time.monotonic() - started
            if self.on_done is not None:
                self.on_done(call)


class ChatStream:
    """Stream `runnable.stream(messages)` under a first-token deadline, heartbeats and a total cap (seconds)."""

    def __init__(
        self,
        runnable,
        messages,
        *,
        first_token_timeout_s: float,
        heartbeat_s: float,
        max_s: float,
        classify: Callable[[BaseException], CoachupError],
        on_provider_done: Callable[[ProviderCall], None] | None = None,
    ) -> None:
        self._pump = _Pump(runnable, messages, on_provider_done)
        self.first_token_timeout_s, self.heartbeat_s, self.max_s = first_token_timeout_s, heartbeat_s, max_s
        self._classify = classify
        self.outcome = StreamOutcome(call=self._pump.call)

    def cancel(self) -> None:
        self._pump.cancelled.set()

    def events(self) -> Iterator[tuple[str, object]]:
        out, q = self.outcome, self._pump.queue
        start = last_write = time.monotonic()
        pending = None
        self._pump.start()
        try:
            while True:
                if pending is None:
                    limits = [last_write + self.heartbeat_s, start + self.max_s]
                    if out.first_token_s is None:
                        limits.append(start + self.first_token_timeout_s)
                    try:
                        pending = q.get(timeout=max(0.0, min(limits) - time.monotonic()))
                    except queue.Empty:
                        now = time.monotonic()
                        if out.first_token_s is None and now - start >= self.first_token_timeout_s:
                            out.outcome, out.error_type = "timeout", "first_token_timeout"
                            yield "timeout", self.first_token_timeout_s
                            return
                        if now - start >= self.max_s:
                            out.outcome, out.error_type = "error", "stream_too_long"
                            yield (
                                "error",
                                UpstreamTimeout(f"the stream exceeded {self.max_s:g} s", type="stream_too_long"),
                            )
                            return
                        last_write = now
                        yield "heartbeat", None
                        continue
                kind, value = pending
                pending = None
                if kind == "text":
                    parts = [value]
                    while len(parts) < _DRAIN_MAX:  # merge what queued up meanwhile into one write
                        try:
                            nxt = q.get_nowait()
                        except queue.Empty:
                            break
                        if nxt[0] != "text":
                            pending = nxt
                            break
                        parts.append(nxt[1])
                    text = "".join(parts)
                    if out.first_token_s is None:
                        out.first_token_s = time.monotonic() - start
                    out.chunks += len(parts)
                    out.chars += len(text)
                    yield "text", text
                    last_write = time.monotonic()
                elif kind == "end":
                    yield "done", None
                    return
                else:
                    error = self._classify(value)
                    out.outcome, out.error_type = "error", error.type
                    yield "error", error
                    return
        except GeneratorExit:
            out.outcome = "disconnect"
            raise
        finally:
            self.cancel()
            out.duration_s = time.monotonic() - start
