"""What every `coachup` command starts from: settings (refused with one line when unsafe) and the broker.

A leaf of the CLI package (the command modules import it; it imports none of them).
"""

from __future__ import annotations

import click

from coachup.settings import SettingsError, load_settings

__all__ = ["_settings", "_broker", "_require_local_server"]


def _settings():
    """Settings from the environment, refused with one line when unsafe (the broker's own checks included)."""
    try:
        settings = load_settings()
        _broker(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


def _broker(settings):
    """The configured broker (`workers.brokers`); a missing optional package is one line with its pip command."""
    from workers.brokers import MissingExtra, broker_for

    try:
        return broker_for(settings)
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None


def _require_local_server(settings) -> None:
    """On the embedded broker, refuse to start a part that would wait for ever on a server nobody runs."""
    server = _broker(settings).local_server()
    if server is not None and not server.running():
        raise click.ClickException(
            "the embedded broker is not running: start everything with `make run` (`coachup run`), or run "
            "`coachup broker` in another shell first (or set COACHUP_BROKER_URL)"
        )
