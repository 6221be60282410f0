"""A local SQS: moto in server mode on a free loopback port, one per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from .services import free_port, port_open, require
from .wait import wait_until

# moto accepts any credentials; these only have to exist for botocore to sign requests
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
MOTO_REGION = "us-east-1"


class MotoServer:
    """`moto_server` on 127.0.0.1:<free port>; `url` is the endpoint for `AWS_ENDPOINT_URL_SQS`."""

    def __init__(self, log_path: Path) -> None:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        require(exe is not None, "moto_server (pip install 'moto[server]')")
        self.port = free_port()
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **MOTO_CREDENTIALS},
        )
        wait_until(
            lambda: self.proc.poll() is None and port_open("127.0.0.1", self.port),
            timeout=30,
            interval=0.1,
            what="moto_server to listen",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process needs to use this server as its SQS."""
        return {"AWS_ENDPOINT_URL_SQS": self.url, "AWS_REGION": MOTO_REGION, **MOTO_CREDENTIALS}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def sqs_stack_env(server: MotoServer, name: str) -> dict[str, str]:
    """Environment for a stack on `server`, its queues prefixed so stacks never share one."""
    return {
        "COACHUP_BROKER_URL": "sqs://",
        "COACHUP_SQS_QUEUE_PREFIX": f"t-{name}-{uuid.uuid4().hex[:6]}-",
        "COACHUP_VISIBILITY_TIMEOUT_S": "120",
        **server.env(),
    }
