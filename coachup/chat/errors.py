"""Type what a chat model call raised, for the stream's `error` event and the logs.

Timeouts, 429, 5xx and connection failures are classified like every LLM call (`coachup.assessment.upstream`).
What is left from the provider's client library (an `{"error": ...}` event in the middle of a stream, a cut
connection) is the provider failing; anything else is our bug. Messages carry class names and status codes only.
"""

from __future__ import annotations

from coachup.errors import CoachupError, PermanentError, UpstreamUnavailable

__all__ = ["classify_chat_error"]

_PROVIDER_MODULES = ("openai", "httpx", "httpcore", "langchain_openai")


def classify_chat_error(exc: BaseException) -> CoachupError:
    from coachup.assessment.upstream import classify_error  # one classification for every LLM call

    typed = classify_error(exc)
    if typed.type != "internal_error":
        return typed
    label = type(exc).__name__
    if type(exc).__module__.split(".", 1)[0] in _PROVIDER_MODULES:
        return UpstreamUnavailable(f"the model provider failed mid-stream: {label}")
    return PermanentError(f"the chat model failed: {label}", type="internal_error")
