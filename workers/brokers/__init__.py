"""The broker seam: one object per broker, chosen once from `COACHUP_BROKER_URL` (`broker_for`).

    embedded  (unset)            `embedded.py`: our own valkey-server on a Unix socket under the data dir
    redis     redis://, rediss:// `redis.py`
    sqs       sqs://             `sqs.py`

`broker_kind` is the only place in the code base that looks at which broker is configured; everything else
asks the chosen `Broker` (its capabilities and its answers), so adding a broker is one file and one line here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from coachup.settings import Settings, SettingsError, unsupported_broker_message

from .base import Broker, BrokerView, LocalServer, MissingExtra

__all__ = ["broker_for", "broker_kind", "Broker", "BrokerView", "LocalServer", "MissingExtra"]

_KINDS = {"": "embedded", "redis": "redis", "rediss": "redis", "redis+socket": "redis", "sqs": "sqs"}


def broker_kind(url: str) -> str:
    """`embedded`, `redis` or `sqs`, from the broker URL's scheme; SettingsError for anything else."""
    scheme = urlsplit(url).scheme if url else ""
    try:
        return _KINDS[scheme]
    except KeyError:
        raise SettingsError(
            unsupported_broker_message(url) or f"COACHUP_BROKER_URL {scheme}:// is not supported"
        ) from None


def broker_for(settings: Settings) -> Broker:
    """The `Broker` for `settings` (raises `SettingsError` on unsafe settings, `MissingExtra` without its package)."""
    kind = broker_kind(settings.broker_url)
    if kind == "embedded":
        from .embedded import EmbeddedBroker

        return EmbeddedBroker(settings)
    if kind == "sqs":
        from .sqs import SqsBroker

        return SqsBroker(settings)
    from .redis import RedisBroker

    return RedisBroker(settings)
