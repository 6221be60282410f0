"""Typed failures. Every error the system raises on purpose is either retryable or permanent.

Workers declare `autoretry_for=(RetryableError,)` and `dont_autoretry_for=(PermanentError,)`; the API maps
`ApiError` subclasses to a 4xx/5xx JSON body `{"error": {"type", "message"}}`.
"""

from __future__ import annotations

__all__ = [
    "CoachupError",
    "RetryableError",
    "PermanentError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "ProviderUnconfigured",
    "NotFound",
    "ValidationFailed",
]


class CoachupError(Exception):
    """Base of every deliberate failure. `type` is the stable machine-readable name."""

    type = "internal_error"

    def __init__(self, message: str = "", *, type: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.type)
        if type:
            self.type = type

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.type


class RetryableError(CoachupError):
    """A transient failure: the same call may succeed later (timeouts, 429, 5xx, connection errors)."""

    type = "retryable"


class PermanentError(CoachupError):
    """Retrying cannot help: bad input, other 4xx, unconfigured provider, missing object."""

    type = "permanent"


class UpstreamTimeout(RetryableError):
    """An upstream call timed out."""

    type = "timeout"


class UpstreamUnavailable(RetryableError):
    """An upstream answered 5xx or could not be reached."""

    type = "upstream_unavailable"


class UpstreamRateLimited(RetryableError):
    """An upstream answered 429."""

    type = "rate_limited"


class UpstreamRejected(PermanentError):
    """An upstream refused the request (4xx other than 429)."""

    type = "upstream_rejected"


class ProviderUnconfigured(PermanentError):
    """The chosen provider lacks its configuration (e.g. an API key)."""

    type = "provider_unconfigured"


class NotFound(PermanentError):
    """The referenced record does not exist."""

    type = "not_found"


class ValidationFailed(PermanentError):
    """Input does not match its schema."""

    type = "validation_error"
