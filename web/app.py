"""The Flask application factory."""

from __future__ import annotations

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from coachup.interaction import ClosingClassifier
from coachup.logs import configure_logging
from coachup.redaction import Hasher
from coachup.settings import Settings, load_settings
from coachup.store import create_store

from .errors import register_error_handlers
from .hooks import install_hooks
from .runtime import ApiRuntime

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, *, celery_app=None, configure_logs: bool = True) -> Flask:
    """A ready API: store schema ensured, Celery app for publishing, hooks and error handlers installed."""
    from workers import create_celery

    settings = settings or load_settings()
    if configure_logs:
        configure_logging("api", settings.env, settings.log_level, log_format=settings.log_format)
    app = Flask("coachup")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    if isinstance(app.json, DefaultJSONProvider):  # Flask's own provider: keep our key order
        app.json.sort_keys = False
    app.extensions["coachup"] = ApiRuntime(
        settings=settings,
        store=create_store(settings.database_url),
        celery=celery_app or create_celery(settings),
        hasher=Hasher(settings.hash_secret),
        closing_cue=ClosingClassifier(),
    )
    install_hooks(app)
    rt = app.extensions["coachup"]
    rt.celery.coachup.broker.warm(rt.celery)  # the readiness probe's client, built before the first probe
    from workers.relay import install_relay

    # the outbox relay thread of this process (started on the first job row, after a gunicorn fork too)
    install_relay(rt.celery, rt.store, rt.hasher, app.extensions["coachup_metrics"])
    from .jwt_auth import install_auth

    install_auth(app, settings)  # after the context hook, so a 401 is logged with its request id
    from .input_guard import install_input_guard

    install_input_guard(app)  # every query string, path parameter and JSON body, before any view reads them
    register_error_handlers(app)
    from .openapi import bp as openapi_bp
    from .routes import assessments, health, intake, jobs, metrics, ops

    for bp in (intake.bp, assessments.bp, jobs.bp, health.bp, openapi_bp, metrics.bp, ops.bp):
        app.register_blueprint(bp)
    from .routes import catalogue, speech, storage

    for bp in (speech.bp, storage.bp, catalogue.bp):
        app.register_blueprint(bp)
    from .routes import ops_skills, service_metrics, tracked_skills

    for bp in (service_metrics.bp, tracked_skills.bp, ops_skills.bp):
        app.register_blueprint(bp)
    from .routes import chat, summaries

    for bp in (chat.bp, summaries.bp):
        app.register_blueprint(bp)
    from .body_deadline import BodyDeadline

    # gthread workers no longer bound a slow request body themselves (web/body_deadline.py)
    app.wsgi_app = BodyDeadline(app.wsgi_app)  # type: ignore[method-assign]
    return app
