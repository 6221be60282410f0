"""The reliability run writes every in-process `coachup` log line (JSON, as in production) to one file,
so the leak scan at the end reads exactly what an operator's log pipeline would have received."""

from __future__ import annotations

import logging

import pytest

from coachup.logs import _CoachupFormatter

RUN_LOG = "reliability-api.log"


@pytest.fixture(scope="session", autouse=True)
def run_log(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / RUN_LOG
    handler = logging.FileHandler(path)
    handler.setFormatter(_CoachupFormatter("api", "test"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("coachup")
    root.addHandler(handler)
    yield path
    root.removeHandler(handler)
    handler.close()
