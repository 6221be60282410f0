"""The bare Flask baseline of the API benchmark: `POST /assessments/run` that only calls `send_task`.

Same broker and Celery settings as the project (`bench.apps:bare`), no validation, no store, no hooks,
no metrics. Served by the same gunicorn setup (`gunicorn -w 2 bench.bare_api:app`).
"""

from __future__ import annotations

from flask import Flask

__all__ = ["app"]

app = Flask("bench-bare")


@app.post("/assessments/run")
def run():
    from bench.apps import NOOP, build

    result = build("bare").send_task(NOOP, queue="assessments", ignore_result=True)
    return {"taskId": result.id, "status": "accepted"}, 202
