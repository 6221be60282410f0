"""A failed task's exception keeps its type and frames and loses any text that could quote user data."""

from __future__ import annotations

import json
import logging
import traceback

from sqlalchemy.exc import IntegrityError, OperationalError

from coachup.errors import UpstreamRejected
from coachup.logs import _CoachupFormatter
from workers.safe_errors import UnexpectedError, withhold
from workers.store_outage import StoreUnavailable

RAW = "sess-RAWERR-77 said periwinkle"


def _raised(fn):
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def _provider_refusal():
    try:
        raise ValueError(f"400 refused input: {RAW}")
    except ValueError:
        raise UpstreamRejected("model provider rejected the call: BadRequestError (HTTP 400)") from None


def _bug():
    raise KeyError(RAW)


def _store_down():
    raise OperationalError("INSERT INTO turns VALUES (%(s)s)", {"s": RAW}, Exception(RAW))


def _store_refused():
    raise IntegrityError("INSERT INTO turns VALUES (%(s)s)", {"s": RAW}, Exception(RAW))


def test_a_deliberate_error_keeps_its_message_and_loses_its_chain():
    exc = withhold(_raised(_provider_refusal))
    assert isinstance(exc, UpstreamRejected) and exc.type == "upstream_rejected"
    text = "".join(traceback.format_exception(exc))
    assert RAW not in text and "_provider_refusal" in text  # the frames stay


def test_an_unexpected_error_is_named_and_located_but_not_quoted():
    exc = withhold(_raised(_bug))
    assert isinstance(exc, UnexpectedError) and exc.type == "KeyError"
    assert "test_safe_errors.py" in exc.message and "_bug" in exc.message
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    assert RAW not in text and "_bug" in text


def test_store_errors_lose_their_sql_parameters():
    down = withhold(_raised(_store_down))
    assert isinstance(down, StoreUnavailable)  # retryable, as for retries
    refused = withhold(_raised(_store_refused))
    assert isinstance(refused, UnexpectedError) and refused.type == "IntegrityError"
    for exc in (down, refused):
        assert RAW not in "".join(traceback.format_exception(exc)) + repr(exc)


def test_celery_trace_lines_keep_ids_and_the_exception_type_only():
    exc = _raised(_bug)
    context = {
        "hostname": "w@h",
        "id": "t-1",
        "name": "assessments.run",
        "exc": repr(exc),
        "traceback": f"Traceback ... KeyError: {RAW}",
        "args": f"['{RAW}']",
        "kwargs": "{}",
        "description": "raised unexpected",
        "internal": False,
    }
    record = logging.LogRecord(
        "celery.app.trace",
        logging.ERROR,
        __file__,
        1,
        "Task %(name)s[%(id)s] %(description)s: %(exc)s",
        (context,),
        (type(exc), exc, exc.__traceback__),
    )
    record.data = context
    line = _CoachupFormatter("worker", "test").format(record)
    assert RAW not in line
    doc = json.loads(line)
    assert doc["msg"] == "Task assessments.run[t-1] raised unexpected: KeyError"
    assert doc["data"]["exc"] == "KeyError" and doc["exc_type"] == "KeyError"
    assert any("_bug" in f for f in doc["exc_frames"])
