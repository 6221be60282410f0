"""`workers.run_lease.holder_dead`: a copy takes a live run lease over only from a holder it knows is gone."""

from __future__ import annotations

import os
import subprocess
import sys

from workers.run_lease import holder_dead, new_token


def _token_of(pid: int) -> str:
    host, _pid, rand = new_token().split(".")
    return f"{host}.{pid}.{rand}"


def test_a_holder_whose_process_exited_on_this_host_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: its pid is gone
    assert holder_dead(_token_of(child.pid))


def test_a_killed_child_not_yet_reaped_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, still a zombie (not reaped)
        assert holder_dead(_token_of(child.pid))
    finally:
        child.wait()


def test_a_live_process_this_process_and_other_hosts_are_not_dead():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not holder_dead(_token_of(child.pid))
        assert not holder_dead(new_token())  # this very process
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        _host, pid, rand = _token_of(gone.pid).split(".")
        assert not holder_dead(f"000000000000.{pid}.{rand}")  # another host's holder: wait for its lease
        assert not holder_dead("0123456789abcdef0123456789abcdef")  # a token of another shape
    finally:
        child.kill()
        child.wait()
