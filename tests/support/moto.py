"""A local SQS: moto in server mode on a loopback port it binds itself, one per test session."""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from .services import port_open, reported_port, require
from .wait import wait_until

# moto accepts any credentials; these only have to exist for botocore to sign requests
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
MOTO_REGION = "us-east-1"
RUNNING_ON = r"Running on http://127\.0\.0\.1:(\d+)"  # werkzeug's start-up line


class MotoServer:
    """`moto_server` on 127.0.0.1:<the port it bound>; `url` is the endpoint for `AWS_ENDPOINT_URL_SQS`."""

    def __init__(self, log_path: Path) -> None:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        require(exe is not None, "moto_server (pip install 'moto[server]')")
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(  # port 0: the server binds a free port itself and logs it
            [exe, "-H", "127.0.0.1", "-p", "0"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **MOTO_CREDENTIALS},
        )
        self.port = reported_port(log_path, RUNNING_ON, self.proc, what="moto_server")
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

    def messages(self) -> list[str]:
        """Every message still on any queue (DLQs included), each as its body plus attributes."""
        import boto3

        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        client = boto3.client("sqs", endpoint_url=self.url, region_name=MOTO_REGION, **keys)
        texts = []
        for url in client.list_queues().get("QueueUrls", []):
            for _ in range(100):  # at most 1000 messages a queue: far more than any test leaves
                got = client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, AttributeNames=["All"]
                ).get("Messages", [])
                for message in got:
                    texts += [json.dumps(message), *_decoded(message.get("Body", ""))]
                if not got:
                    break
        return texts

    def stop(self) -> None:
        from .leaks import keep

        if self.proc.poll() is None:
            try:  # what SQS still holds, dead letters above all, goes to the run's final leak scan
                keep("sqs queues", self.messages())
            except Exception:
                pass
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


def _decoded(body: str) -> list[str]:
    """A kombu SQS body (base64 of the kombu envelope) as texts, its own base64 body decoded too."""
    from .leaks import message_texts

    try:
        return message_texts(base64.b64decode(body, validate=True).decode("utf-8", "replace"))
    except (binascii.Error, ValueError):
        return [body]
