"""Ops API for a dashboard: queue depths, dead letters, redrive. Behind `COACHUP_ADMIN_TOKEN` (bearer).

Never open by default: without a configured token every route answers 403 `admin_unconfigured`.
"""

from __future__ import annotations

import logging

from flask import Blueprint, request

from coachup.logs import log_event

from ..admin import require_admin
from ..errors import ApiError
from ..runtime import runtime
from ..validation import json_body, opt_bool, opt_int, opt_str

bp = Blueprint("ops", __name__)
log = logging.getLogger("coachup.api")
MAX_REDRIVE_PER_CALL = 1000  # bounds one request's time; the CLI has no such cap


bp.before_request(require_admin)


def _source():
    rt = runtime()
    return rt.celery.coachup.broker.dead_letters(rt.store)


def _read(fn, *args, **kwargs):
    """A dead-letter read; the DLQ unreachable (SQS down, store down) is a 503, never a 500."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise ApiError(
            503, "deadletters_unavailable", f"dead-letter queue unreachable ({type(exc).__name__})"
        ) from None


def _filters(data: dict) -> dict:
    return {"task": opt_str(data, "task", max_len=100), "error": opt_str(data, "error", max_len=64)}


@bp.get("/api/v1/ops/queues")
def queues():
    """Waiting (and in-flight) messages per queue, and the dead-letter depth: `workers.depths`, the same
    report as `coachup queues` and the worker's gauges."""
    from workers.depths import read_depths

    rt = runtime()
    try:
        report = read_depths(rt.celery)
    except Exception as exc:  # broker (or the dead-letter store) down: say so, never a 500
        raise ApiError(503, "broker_unavailable", f"broker unreachable ({type(exc).__name__})") from None
    return {
        "broker": report.broker,
        "queues": [
            {"name": r.queue, "depth": r.visible, "inFlight": r.in_flight, "deadLetter": r.dead_letter}
            for r in report.queues
        ],
        "deadLetters": report.dead.as_dict(),
    }


@bp.get("/api/v1/ops/deadletters")
def dead_letters():
    """Dead letters newest first (`?task=`, `?error=`, `?limit=`), without consuming them.

    `depth` is the one dead-letter depth (`workers.depths`, as `/ops/queues`, `coachup queues`, `coachup dlq
    ls` and the gauge), with its parts: `stored` and `inBroker`. With the broker down only the stored letters
    can be counted: then `inBroker` is null and `depth` counts the stored letters alone."""
    from coachup.queues import DEAD_LETTER_DEPTH_MEANS
    from workers.depths import read_depths

    args = dict(request.args.items())
    limit = opt_int(args, "limit", default=100, lo=1, hi=500)
    rt, source = runtime(), _source()
    items = _read(source.list, **_filters(args), limit=limit)
    try:
        depth = read_depths(rt.celery).dead.as_dict()
    except Exception:  # the broker is down: say what could still be counted
        stored = _read(source.depth)
        depth = {"depth": stored, "stored": stored, "inBroker": None, "counts": "stored letters (broker unreachable)"}
    else:
        assert depth["counts"] == DEAD_LETTER_DEPTH_MEANS
    return {
        "depth": depth["depth"],
        "stored": depth["stored"],
        "inBroker": depth["inBroker"],
        "counts": depth["counts"],
        "items": [x.to_dict() for x in items],
    }


@bp.post("/api/v1/ops/deadletters/redrive")
def redrive_dead_letters():
    """Redrive matching letters (`task`, `error`, `limit`, `dryRun`, `includePermanent`); same rules as `coachup
    dlq redrive` (letters that died of a `permanent` error stay unless `includePermanent` or `error` names them)."""
    from coachup.redrive import redrive
    from workers.deadletter import redrive_sender

    data = json_body(required=False)
    rt = runtime()
    limit = opt_int(data, "limit", default=100, lo=1, hi=MAX_REDRIVE_PER_CALL)
    dry_run = opt_bool(data, "dryRun")
    include_permanent = opt_bool(data, "includePermanent")
    filters, source = _filters(data), _source()
    try:
        report = redrive(
            source,
            redrive_sender(rt.celery),
            max_redrives=rt.settings.max_redrives,
            limit=limit,
            dry_run=dry_run,
            include_permanent=include_permanent,
            **filters,
        )
    except Exception as exc:  # what was sent is already out of the DLQ; the rest stays
        raise ApiError(503, "broker_unavailable", f"redrive stopped ({type(exc).__name__})") from None
    body = report.to_dict()
    log_event(
        log,
        "deadletter_redrive",
        selected=body["selected"],
        redriven=body["redriven"],
        held=body["held"],
        dryRun=dry_run,
    )
    return body
