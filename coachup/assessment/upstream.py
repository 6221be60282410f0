"""Map whatever a model call raised to one typed `coachup.errors` failure (retryable or permanent).

Classification is by class name along the MRO and by `status_code` / `is_retryable`, so neither the
openai SDK nor httpx has to be importable here. Messages carry status codes and class names only:
provider bodies and parser errors may echo the transcript.
"""

from __future__ import annotations

from coachup.errors import (
    CoachupError,
    PermanentError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["classify_error", "INVALID_OUTPUT"]

INVALID_OUTPUT = "invalid_output"

_TIMEOUT_NAMES = {"ModelTimeoutError", "APITimeoutError", "TimeoutException", "TimeoutError", "ReadTimeout"}
_RATE_NAMES = {"ModelRateLimitError", "RateLimitError"}
_UNAVAILABLE_NAMES = {
    "ModelAPIError",
    "ModelConnectionError",
    "APIConnectionError",
    "InternalServerError",
    "ConnectError",
    "ConnectionError",
    "RemoteProtocolError",
    "NetworkError",
}
_INVALID_NAMES = {"OutputParserException", "ValidationError", "JSONDecodeError"}


def classify_error(exc: BaseException) -> CoachupError:
    """The typed error for `exc`; a `CoachupError` is returned unchanged."""
    if isinstance(exc, CoachupError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    label = f"{type(exc).__name__}" + (f" (HTTP {status})" if isinstance(status, int) else "")
    if names & _TIMEOUT_NAMES or status == 408:
        return UpstreamTimeout(f"model call timed out: {label}")
    if names & _RATE_NAMES or status == 429:
        return UpstreamRateLimited(f"model provider rate-limited the call: {label}")
    if names & _UNAVAILABLE_NAMES or (isinstance(status, int) and (status >= 500 or status == 409)):
        return UpstreamUnavailable(f"model provider unavailable: {label}")
    if isinstance(status, int) and 400 <= status < 500:
        return UpstreamRejected(f"model provider rejected the call: {label}")
    if names & _INVALID_NAMES:
        return PermanentError(f"model reply did not match the assessment schema: {label}", type=INVALID_OUTPUT)
    if getattr(exc, "is_retryable", None) is True:
        return UpstreamUnavailable(f"model call failed: {label}")
    if getattr(exc, "is_retryable", None) is False:
        return UpstreamRejected(f"model provider rejected the call: {label}")
    return PermanentError(f"assessor failed: {label}", type="internal_error")
