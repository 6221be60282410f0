"""JSON-lines logging for the API, the workers and the CLI (python-json-logger's field rules, orjson's encoder).

Every line carries `ts` (ISO 8601 UTC, ms), `level`, `service`, `env`, `event` and the current request
context's safe fields. Emit events with `log_event(logger, "event_name", field=value, ...)`.

Lines are written in batches (`BufferedLineHandler`): a worker logs twice per task, and one write (and flush)
per line was a third of what the instrumentation cost a pool child. A batch is written when it reaches
`PIPE_BUF` bytes, every `FLUSH_INTERVAL_S` (a timer thread), at once for a warning or worse, when a worker's
task ends (its `task_postrun`: one write per task, and its lines are in the log once its job row says done), before a fork,
at exit (`logging.shutdown`), when a pool child stops (`flush_all()` from `worker_process_shutdown`) and when
a pool child is sent SIGTERM (`flush_on_sigterm()`). Each write holds whole lines and at most `PIPE_BUF`
bytes, so lines of processes sharing one pipe never interleave.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
import weakref

import orjson
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from . import context

__all__ = [
    "configure_logging",
    "log_event",
    "get_logger",
    "frame_lines",
    "LOG_FORMATS",
    "resolve_format",
    "silence_known_noise",
    "formatter",
    "BufferedLineHandler",
    "flush_all",
    "flush_on_sigterm",
    "FLUSH_INTERVAL_S",
]

LOG_FORMATS = ("json", "console")

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


# Celery's task-trace records (`celery.app.trace`, `celery.worker.strategy`) format their message from a
# context dict that also rides along as `data`: the exception's text, the traceback, args/kwargs and the
# return value. Exception text is anyone's text (a provider's 400 quotes the transcript it refused), so these
# keys are reduced to the exception's type or dropped; ids, names and the description stay.
_TRACE_DROP = ("traceback", "args", "kwargs", "return_value", "retval")
_REPR_TYPE = re.compile(r"^([A-Za-z_][\w.]*)(?:\(|$)")
_FRAMES = 8  # innermost frames kept (file:line function) when a record carries an exception


def _exc_name(exc: object) -> str:
    """The exception's type name; Celery passes `repr(exc)`, e.g. `UpstreamRejected('...')`."""
    if isinstance(exc, BaseException):
        return type(exc).__name__
    match = _REPR_TYPE.match(str(exc))
    return match.group(1).rsplit(".", 1)[-1] if match else "error"


def _scrub_context(values: dict) -> dict:
    out = {k: ("…" if k in _TRACE_DROP else v) for k, v in values.items()}
    if "exc" in out:
        out["exc"] = _exc_name(out["exc"])
    return out


def frame_lines(tb, limit: int = _FRAMES) -> list[str]:
    """`file:line function` of a traceback's innermost `limit` frames: where it failed, with no message or
    local value (installed packages shown from their package directory)."""
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f"{code.co_filename.rsplit('/site-packages/', 1)[-1]}:{tb.tb_lineno} {code.co_name}")
        tb = tb.tb_next
    return frames[-limit:]


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_json_default = JsonEncoder().default  # python-json-logger's rules for what JSON cannot hold (str() at worst)


def _dumps(fields: dict) -> str:
    """One JSON object on one line, UTF-8 kept as is (orjson; the standard encoder for what orjson refuses,
    e.g. an integer beyond 64 bits)."""
    try:
        return orjson.dumps(fields, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        import json

        return json.dumps(fields, cls=JsonEncoder, ensure_ascii=False)


class _CoachupFormatter(JsonFormatter):
    def __init__(self, service: str, env: str) -> None:
        super().__init__(reserved_attrs=tuple(_RESERVED), json_ensure_ascii=False)
        self._service = service
        self._env = env
        self._second, self._prefix = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, dict) and "exc" in record.args:
            record.args = _scrub_context(record.args)
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            record.data = _scrub_context(data)
        # python-json-logger's `format` with orjson as the encoder (its `json.dumps` was half the line's cost)
        message_dict: dict = {}
        if isinstance(record.msg, dict):
            message_dict = record.msg.copy()
            record.message = ""
        else:
            record.message = record.getMessage()
        if not record.exc_info and record.exc_text:
            message_dict["exc_info"] = record.exc_text
        if record.stack_info:
            message_dict["stack_info"] = self.formatStack(record.stack_info)
        log_record: dict = {}
        self.add_fields(log_record, record, message_dict)
        return _dumps(log_record)

    def formatException(self, ei) -> str:  # noqa: N802 - logging's naming
        # python-json-logger puts this under `exc_info`; `add_fields` replaces it by type and frames, so the
        # exception's text (anyone's text) is never even formatted
        return ""

    def _ts(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is formatted once per second."""
        second = int(created)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        # python-json-logger's own `add_fields` collects the same things into a dict we would then reorder;
        # building the final order directly saves two dict passes per line (workers log twice per task)
        event = getattr(record, "event", None) or "log"
        log_record.update(
            ts=self._ts(record.created),
            level=_LEVELS.get(record.levelno) or record.levelname.lower(),
            service=self._service,
            env=self._env,
            event=event,
        )
        if message_dict:
            log_record.update(message_dict)
        skip = self._skip_fields  # python-json-logger's reserved attributes (merge_record_extra's rule)
        for key, value in record.__dict__.items():
            if key not in skip and key[:1] != "_":
                log_record[key] = value
        ctx = context.current()
        if ctx is not None:
            for key, value in ctx.log_fields().items():
                log_record.setdefault(key, value)
        if record.exc_info:
            log_record.pop("exc_info", None)
            log_record["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            log_record["exc_frames"] = frame_lines(record.exc_info[2])
        msg = record.message
        if msg and msg != event:
            log_record["msg"] = msg

    def event_line(self, levelno: int, fields: dict) -> str:
        """The line `format` writes for `log_event(logger, event, **fields)`, without a `LogRecord` (no
        message text, no exception, no reserved attribute among `fields`: `log_event` checks)."""
        log_record = {
            "ts": self._ts(time.time()),
            "level": _LEVELS.get(levelno) or logging.getLevelName(levelno).lower(),
            "service": self._service,
            "env": self._env,
            "event": fields["event"],
        }
        for key, value in fields.items():
            if key[:1] != "_":
                log_record[key] = value
        ctx = context.current()
        if ctx is not None:
            for key, value in ctx.log_fields().items():
                log_record.setdefault(key, value)
        return _dumps(log_record)


class _ConsoleFormatter(_CoachupFormatter):
    """`12:00:01.234 worker[4242] info  task_start task=assessments.run taskId=… requestId=…`: the same fields
    as the JSON line (same scrubbing), on one human line prefixed by its process (dev on a terminal)."""

    _SKIP = ("ts", "level", "service", "env", "event")

    def format(self, record: logging.LogRecord) -> str:
        import json

        data = json.loads(super().format(record))
        head = f"{data['ts'][11:23]} {data['service']}[{record.process}] {data['level']:<5} {data['event']}"
        rest = " ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            for k, v in data.items()
            if k not in self._SKIP
        )
        return f"{head} {rest}".rstrip()


def resolve_format(requested: str, env: str, stream) -> str:
    """`COACHUP_LOG_FORMAT`: `json` or `console` as asked; unset, `console` in dev on a terminal, else `json`."""
    if requested:
        return requested
    isatty = getattr(stream, "isatty", None)
    return "console" if env == "dev" and callable(isatty) and isatty() else "json"


def formatter(service: str, env: str, log_format: str = "", stream=None) -> logging.Formatter:
    """The formatter of `service`'s lines on `stream` (JSON, or console lines: `resolve_format`)."""
    console = resolve_format(log_format, env, stream or sys.stdout) == "console"
    return (_ConsoleFormatter if console else _CoachupFormatter)(service, env)


FLUSH_INTERVAL_S = 0.2  # the longest a buffered line waits (the timer thread's period)
_PIPE_BUF = 4096  # POSIX: a pipe write of at most this many bytes is never interleaved with another
_buffered: weakref.WeakSet = weakref.WeakSet()
_timer_pid: int | None = None


class BufferedLineHandler(logging.StreamHandler):
    """A `StreamHandler` that writes whole lines in batches of at most `_PIPE_BUF` bytes (module docstring)."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        try:  # a terminal or an in-memory stream (tests) is written line by line, as before
            self._batch = not stream.isatty() and stream.fileno() >= 0
        except (AttributeError, OSError, ValueError):
            self._batch = False
        _buffered.add(self)

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock (`Handler.handle`)
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self._add(line, record.levelno)

    def emit_event(self, levelno: int, fields: dict) -> None:
        """`log_event`'s direct path: the formatter's `event_line`, no `LogRecord` (same line, same batch)."""
        line = self.formatter.event_line(levelno, fields) + "\n"  # type: ignore[union-attr]
        self.acquire()
        try:
            self._add(line, levelno)
        finally:
            self.release()

    def _add(self, line: str, levelno: int) -> None:
        self._lines.append(line)
        self._size += len(line)
        if not self._batch or self._size >= _PIPE_BUF or levelno >= logging.WARNING:
            self._write()
        else:
            _ensure_timer()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        lines, self._lines, self._size = self._lines, [], 0
        if not lines:
            return
        stream = self.stream
        try:
            fd = stream.fileno()
            stream.flush()  # anything written to the stream directly goes first
        except (AttributeError, OSError, ValueError):
            fd = None
        try:
            for chunk in _chunks(lines):
                if fd is None:
                    stream.write(chunk)
                else:
                    data = chunk.encode("utf-8", "backslashreplace")
                    while data:
                        data = data[os.write(fd, data) :]
            if fd is None:
                stream.flush()
        except Exception:  # a closed stream: logging's own rule is to never raise into the caller
            pass

    def drop(self) -> None:
        """Forget the buffered lines (a forked child: its parent writes them)."""
        self._lines, self._size = [], 0


def _chunks(lines: list[str]):
    """Whole lines joined into pieces of at most `_PIPE_BUF` bytes (a longer line alone)."""
    piece: list[str] = []
    size = 0
    for line in lines:
        if piece and size + len(line) > _PIPE_BUF:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(line)
        size += len(line)
    if piece:
        yield "".join(piece)


def flush_all() -> None:
    """Write every buffered line of this process now (pool child shutdown, tests)."""
    for handler in list(_buffered):
        handler.flush()


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL_S)
        try:
            flush_all()
        except Exception:  # never let the flusher die
            pass


def _ensure_timer() -> None:
    global _timer_pid
    pid = os.getpid()
    if _timer_pid != pid:  # one flusher per process; a forked child starts its own
        _timer_pid = pid
        threading.Thread(target=_flush_loop, name="log-flush", daemon=True).start()


def _before_fork() -> None:
    try:
        flush_all()
    except Exception:
        pass


def _after_fork_in_child() -> None:
    for handler in list(_buffered):
        handler.drop()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _flush_and_die(signum, _frame) -> None:
    for handler in list(_buffered):  # no lock: the interrupted thread may hold it; whole lines only
        handler._write()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def flush_on_sigterm() -> None:
    """In a process that SIGTERM ends at once (a prefork pool child), write the buffered lines first."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _flush_and_die)


def configure_logging(service: str, env: str, level: str = "INFO", stream=None, log_format: str = "") -> None:
    """Route the root logger to JSON lines (or console lines, see `resolve_format`) on `stream` (stdout).
    Idempotent."""
    stream = stream or sys.stdout
    handler = BufferedLineHandler(stream)
    handler.setFormatter(formatter(service, env, log_format, stream))
    handler._coachup = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_coachup", False)]:
        old.flush()
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    global _direct
    _direct = handler if type(handler.formatter) is _CoachupFormatter else None
    # no caller lookup per record (logging's documented optimisation): no line shows file, line or function
    logging._srcfile = None
    for noisy in ("werkzeug", "urllib3", "botocore", "httpx", "openai", "tornado.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Celery's per-task "received"/"succeeded" lines duplicate the lifecycle events of workers.signals and
    # cost the worker's main process (its bottleneck) one formatted line per task; their errors still show
    for duplicate in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(duplicate).setLevel(logging.WARNING)


# Known harmless lines every `make run` repeated (issue 17, point 5), each silenced where it starts and only
# in the case that is harmless; the same warning in any other case still shows:
# - Celery's "running the worker with superuser privileges" SecurityWarning (a dev container runs as root);
#   outside dev/test (COACHUP_ENV) it stays: root in production is a real finding.
# - Celery's CPendingDeprecationWarning on every broker connection loss ("In Celery 5.1 we introduced an optional
#   breaking change ..."): a note about Celery 6's default, not about the outage; Celery's own "Connection to
#   broker lost" line still says what happened, and coachup keeps late-ack redelivery on purpose.
# - Flower's "Inspect method <m> failed" with no error attached, during its first minute: no worker has
#   answered yet because they start together. A connection error (`... failed: <error>`) always shows, and so
#   does the no-reply line once Flower has run for a minute (then the workers really are gone).
_ROOT_WARNING = r"You're running the worker with superuser privileges"
_CANCEL_ON_LOSS_NOTE = r"\s*In Celery 5\.1 we introduced an optional breaking change"
FLOWER_STARTUP_S = 60.0


class _CancelOnLossNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "In Celery 5.1 we introduced an optional breaking change" not in record.getMessage()


class _FlowerStartupNoReply(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._until = time.monotonic() + FLOWER_STARTUP_S

    def filter(self, record: logging.LogRecord) -> bool:
        harmless = record.msg == "Inspect method %s failed" and time.monotonic() < self._until
        return not harmless


def silence_known_noise(env: str) -> None:
    """Silence the harmless repeated warnings above in this process (idempotent)."""
    import warnings

    if env in ("dev", "test"):
        warnings.filterwarnings("ignore", message=_ROOT_WARNING)
    warnings.filterwarnings("ignore", message=_CANCEL_ON_LOSS_NOTE)
    # a Celery worker then puts `always` for its deprecation warnings in front of every filter and routes
    # warnings to the `py.warnings` logger (logging.captureWarnings): drop the note there too
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(f, _CancelOnLossNote) for f in captured.filters):
        captured.addFilter(_CancelOnLossNote())
    inspector = logging.getLogger("flower.inspector")
    if not any(isinstance(f, _FlowerStartupNoReply) for f in inspector.filters):
        inspector.addFilter(_FlowerStartupNoReply())


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


_direct: BufferedLineHandler | None = None  # the JSON handler `configure_logging` installed on the root logger


def _plain_path(logger: logging.Logger, handler: BufferedLineHandler) -> bool:
    """Would a record of `logger` reach `handler` alone, unfiltered? (Then `log_event` skips the `LogRecord`.)"""
    root = logging.root
    if len(root.handlers) != 1 or root.handlers[0] is not handler or handler.filters or root.filters:
        return False  # another handler (pytest's caplog, a test's capture) or a filter: the standard path
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        if node.handlers or node.filters or not node.propagate:
            return False
        node = node.parent
    return True


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields) -> None:
    """One structured event; `fields` must already be safe (hashed ids, counts, no raw text).

    When the line would only reach our JSON handler (a worker, the API), it is built straight from `fields`
    (`_CoachupFormatter.event_line`: the same line) instead of through a `LogRecord`, caller lookup and
    python-json-logger: half the cost of a worker's two lines per task."""
    fields["event"] = event
    handler = _direct
    if (
        handler is not None
        and level < logging.WARNING  # warnings and errors keep the standard path (and its flush at once)
        and _RESERVED.isdisjoint(fields)  # logging refuses these; let it say so
        and _plain_path(logger, handler)
    ):
        if logger.isEnabledFor(level) and level >= handler.level:
            handler.emit_event(level, fields)
        return
    logger.log(level, event, extra=fields)
