"""`coachup run`: start the embedded broker (when no broker is configured), then the API, one worker on every
queue, the scheduler and Flower; stop them together, the embedded broker last.

Each child runs in its own session so a Ctrl-C reaches only this supervisor, which then sends SIGTERM to
every child (a warm shutdown for the Celery worker: the running task finishes), waits for them, and only
then stops the broker server (it flushes its append-only file), so no child ever loses its broker.
SIGHUP (the terminal closed) and SIGTERM stop everything the same way. A child that dies on its own is started
again after a backoff (1 s, doubling to `RESTART_MAX_S`, back to 1 s once it has run `STABLE_S`) instead of
stopping the system; children die with the supervisor even when it is killed outright, and a second
`coachup run` on the same data dir is refused (`lifetime.py`).

In the console log format (dev on a terminal, or `COACHUP_LOG_FORMAT=console`) every line a child prints, its
log lines and whatever else it writes (gunicorn, Celery's banner, Flower, warnings), reaches the terminal
prefixed by the child's name (`api    | ...`), and the children keep the console format although they now
write into a pipe. In JSON the children write straight to the supervisor's stdout/stderr (every JSON line
carries its `service`).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time

from coachup.settings import Settings
from coachup.store import create_store

__all__ = ["run_all", "serve_broker", "flower_credentials", "worker_instances", "MAX_WORKER_INSTANCES"]

STOP_GRACE_S = 30  # longer than the group timeout (15 s) plus a margin: a running job may finish
RESTART_MAX_S = 30.0  # a child that keeps dying is retried at most this often
STABLE_S = 60.0  # a child that ran this long before dying starts again after 1 s
MAX_WORKER_INSTANCES = 4  # `coachup run` is one host's stack: more cores are for more hosts


def worker_instances() -> int:
    """Worker instances `coachup run` starts: one per core this process may use (1 to 4), each `-c 1`.

    A worker's main process (taking messages, acking, storing results) is its bottleneck on small jobs: a
    second core is used by a second instance, not by a second pool child of the same main process
    (docs/benchmarks.md, "default deployment"). Jobs in flight are the same: one per core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKER_INSTANCES))


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def flower_credentials(settings: Settings) -> tuple[str, str]:
    """(user:password, where it came from). Generated once into the data dir when unset."""
    if settings.flower_basic_auth:
        return settings.flower_basic_auth, "FLOWER_BASIC_AUTH"
    path = settings.data_dir / "flower-auth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"admin:{secrets.token_urlsafe(12)}\n")
        path.chmod(0o600)
    return path.read_text().strip(), str(path)


def _banner(settings: Settings, broker, flower_source: str) -> list[str]:
    store = "SQLite" if settings.database_url.startswith("sqlite") else "PostgreSQL"
    return [
        f"coachup: broker   {broker.describe()}",
        f"coachup: store    {store} ({_redact_url(settings.database_url)})",
        f"coachup: API      http://{settings.api_host}:{settings.api_port}  (health: /api/health)",
        f"coachup: Flower   http://127.0.0.1:{settings.flower_port}  (basic auth from {flower_source})",
        (
            f"coachup: auth     JWT via {settings.auth_jwks_url}; every session belongs to its token's subject"
            if settings.auth_jwks_url
            else "coachup: auth     OFF (dev): no JWKS, every session, job and audio object belongs to one dev subject"
        ),
        "coachup: Ctrl-C stops everything (warm shutdown)",
    ]


def _redact_url(url: str) -> str:
    from coachup.redaction import scrub

    return scrub(url, limit=200)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def serve_broker(settings: Settings, broker) -> int:
    """`coachup broker`: the embedded broker in the foreground until Ctrl-C or SIGTERM."""
    server = broker.local_server()
    if server is None:
        _say(f"coachup: nothing to run: the broker is {broker.describe()}, not the embedded one")
        return 1
    stopping = False

    def _stop(signum=None, _frame=None):
        nonlocal stopping
        stopping = True

    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stop)
    server.start()
    _say(f"coachup: broker   {broker.describe()}; Ctrl-C stops it")
    while not stopping and server.proc.poll() is None:
        time.sleep(0.2)
    server.stop()
    return 0


def run_all(settings: Settings, broker) -> int:
    from coachup.lifetime import AlreadyRunning, hold_data_dir

    try:
        lock = hold_data_dir(settings)  # noqa: F841 - held (open) until this process ends
    except AlreadyRunning as exc:
        _say(f"coachup: {exc}")
        return 1
    auth, source = flower_credentials(settings)
    for line in _banner(settings, broker, source):
        _say(line)
    server = broker.local_server()
    if server is not None:  # first: every child connects to it at start
        server.start()
    try:
        return _run_children(settings, broker, auth)
    finally:
        if server is not None:  # last: after every child has stopped
            server.stop()
            _say("coachup: embedded broker stopped")


def _console(settings: Settings) -> bool:
    from coachup.logs import resolve_format

    return resolve_format(settings.log_format, settings.env, sys.stdout) == "console"


def _run_children(settings: Settings, broker, auth: str) -> int:
    create_store(settings.database_url)  # schema once, before the children race for it

    env = dict(os.environ, FLOWER_BASIC_AUTH=auth, COACHUP_DATA_DIR=str(settings.data_dir))
    if not env.get("COACHUP_WORKER_METRICS_PORT"):  # a second `make run` on this host must not lose its worker
        env["COACHUP_WORKER_METRICS_PORT"] = "auto"
    console = _console(settings)
    if console:  # the children write into a pipe now: keep them on the console format
        env["COACHUP_LOG_FORMAT"] = "console"
    exe = [sys.executable, "-m", "coachup.cli", "--no-banner"]  # the banner above said it once
    commands = {"api": exe + ["api"]}
    for i in range(1, worker_instances() + 1):  # `worker`, `worker2`, ...: each `-c 1`, its own metrics port
        suffix = str(i) if i > 1 else ""
        commands[f"worker{suffix}"] = exe + ["worker", "-c", "1", "-n", f"coachup{suffix}@%h", "--without-mingle"]
    commands.update(beat=exe + ["beat"], flower=exe + ["flower"])
    if not broker.has_events:  # SQS carries no worker events: Flower would show nothing
        del commands["flower"]
        _say("coachup: Flower   not started on SQS (no worker events there); use `coachup queues`")
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def _stop(signum=None, _frame=None):
        nonlocal stopping
        stopping = True

    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stop)
    prefix = _PREFIX if console else None
    for name, argv in commands.items():
        children[name] = _spawn(argv, env, prefix and prefix.format(name=name))
    started = dict.fromkeys(children, time.monotonic())
    backoff = dict.fromkeys(children, 1.0)
    due: dict[str, float] = {}  # name -> when a dead child starts again

    while not stopping:
        now = time.monotonic()
        for name, proc in children.items():
            if name in due or proc.poll() is None:
                continue
            if now - started[name] >= STABLE_S:
                backoff[name] = 1.0
            due[name] = now + backoff[name]
            _say(f"coachup: {name} exited with {proc.returncode}; starting it again in {backoff[name]:.0f} s")
            backoff[name] = min(backoff[name] * 2, RESTART_MAX_S)
        for name, when in list(due.items()):
            if now >= when and not stopping:
                children[name] = _spawn(commands[name], env, prefix and prefix.format(name=name))
                started[name] = time.monotonic()
                del due[name]
                _say(f"coachup: {name} started again (pid {children[name].pid})")
        time.sleep(0.2)
    _terminate(children)
    _say("coachup: stopped")
    return 0


_PREFIX = "{name:<6} | "  # api, worker (worker2, ...), beat, flower
_relay_lock = threading.Lock()


def _spawn(argv: list[str], env: dict, prefix: str | None = None) -> subprocess.Popen:
    """A child in its own session (Ctrl-C reaches only us) that dies with us (`die_with_parent`); with a
    `prefix`, its stdout and stderr are relayed line by line to ours, each line prefixed."""
    from coachup.lifetime import die_with_parent

    if prefix is None:
        return subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=die_with_parent)  # noqa: PLW1509
    proc = subprocess.Popen(  # noqa: PLW1509
        argv,
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    threading.Thread(target=_relay, args=(proc.stdout, prefix.encode()), daemon=True).start()
    return proc


def _relay(stream, prefix: bytes) -> None:
    """Copy `stream` to our stdout, `prefix` before every line, one whole line at a time (until EOF)."""
    out = sys.stdout.buffer
    for line in iter(stream.readline, b""):
        with _relay_lock:
            try:
                out.write(prefix + line.rstrip(b"\r\n") + b"\n")
                out.flush()
            except OSError:  # our terminal is gone: keep draining so the child never blocks on a full pipe
                pass
    stream.close()


def _terminate(children: dict[str, subprocess.Popen]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("use `coachup run`")
