"""WSGI entry for gunicorn: `gunicorn 'web.wsgi:app'` (builds the app from the environment)."""

from .app import create_app

app = create_app()
