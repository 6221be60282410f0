"""A moto server (S3 API) on a free loopback port, one per test session, with one audio bucket."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from .moto import RUNNING_ON
from .services import port_open, reported_port, require
from .wait import wait_until

TEST_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    """`python -m moto.server` on 127.0.0.1; `env` is what a process needs to use its bucket."""

    def __init__(self) -> None:
        try:
            import moto.server  # noqa: F401
        except ImportError:
            require(False, "moto[server] (the test extra)")
        self.bucket = "coachup-audio-" + uuid.uuid4().hex[:8]
        log_path = Path(tempfile.gettempdir()) / f"moto-s3-{self.bucket}.log"
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(  # port 0: the server binds a free port itself and logs it
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **TEST_AWS_ENV},
            start_new_session=True,
        )
        self.port = reported_port(log_path, RUNNING_ON, self.proc, what="moto server (S3)")
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=30, what="moto server to listen")
        self.client().create_bucket(Bucket=self.bucket)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **TEST_AWS_ENV,
            "S3_BUCKET_AUDIO": self.bucket,
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": "us-east-1",
            "S3_FORCE_PATH_STYLE": "1",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
