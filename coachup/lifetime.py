"""What keeps `coachup run` one system: children that die with it, and one supervisor per data dir.

- `die_with_parent()`: a `preexec_fn` asking Linux to send the child SIGTERM when its parent dies
  (`prctl(PR_SET_PDEATHSIG)`), so a supervisor killed outright (SIGKILL, OOM) leaves no API, worker, scheduler
  or broker behind to hold the ports and the data dir. It survives `exec` (our children exec gunicorn and
  Celery). Elsewhere than Linux it does nothing.
- `hold_data_dir(settings)`: an exclusive `flock` on `<data dir>/coachup-run.lock`, held for the supervisor's
  life (the kernel drops it when the process dies, however it dies); a second `coachup run` on the same data
  dir is refused with the holder's pid instead of failing later on "address in use".
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys

from coachup.settings import Settings

__all__ = ["die_with_parent", "hold_data_dir", "AlreadyRunning"]

_PR_SET_PDEATHSIG = 1
LOCK_NAME = "coachup-run.lock"


class AlreadyRunning(RuntimeError):
    """Another supervisor holds this data dir."""


def die_with_parent() -> None:  # runs in the child between fork and exec: no logging, no allocation to speak of
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect: do as it would have asked
        os.kill(os.getpid(), signal.SIGTERM)


def hold_data_dir(settings: Settings):
    """The open lock file (keep it referenced for the supervisor's life); AlreadyRunning when it is held."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 - held open on purpose until the process ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"another `coachup run` (pid {holder}) already runs on {settings.data_dir}; stop it first "
            "(Ctrl-C in its terminal, or kill that pid), or set COACHUP_DATA_DIR to another directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
