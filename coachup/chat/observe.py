"""What one chat stream leaves behind: the `chat_stream` log event and the stream metrics (consumer side),
and the `provider.chat` span with latency, tokens and cost (pump side, when the model call really ended).

Labels are provider and model only. Log lines carry counts, times and hashes: never the prompt or the reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from coachup.logs import log_event
from coachup.metrics import Metrics
from coachup.redaction import scrub

from .stream import ProviderCall, StreamOutcome

__all__ = ["ChatObserver", "PROVIDER_KIND"]

log = logging.getLogger("coachup.chat")
PROVIDER_KIND = "chat_stream"  # `kind` label of coachup_provider_* (assessment calls are `chat`)


def _cost_cents(model: str, tokens_in: int, tokens_out: int) -> float:
    from coachup.assessment.pricing import cost_usd  # one price table for every LLM call

    return cost_usd(model, tokens_in, tokens_out) * 100


@dataclass
class ChatObserver:
    """Observes one stream. `fields` are safe extra log fields (hashed session, counts)."""

    metrics: Metrics
    provider: str
    model: str
    fields: dict

    def _guard(self, what: str) -> None:
        # observers never break a stream: a failing metric or log write is reported and dropped
        log.warning("chat observer failed", extra={"event": "observer_error", "what": what})

    def stream_started(self) -> None:
        try:
            self.metrics.chat_streams_open.labels(self.provider, self.model).inc()
        except Exception:
            self._guard("stream_started")

    def provider_done(self, call: ProviderCall) -> None:
        """On the pump thread, once the model call has ended (completed, failed or cancelled)."""
        try:
            model = call.model or self.model
            error = None if call.error is None or call.cancelled else type(call.error).__name__
            cost = _cost_cents(model, call.tokens_in, call.tokens_out)
            self.metrics.observe_provider_call(
                PROVIDER_KIND,
                self.provider,
                self.model,
                call.seconds,
                error=error,
                tokens_in=call.tokens_in,
                tokens_out=call.tokens_out,
                cost_cents=cost,
            )
            span = {
                "span": "provider.chat",
                "purpose": PROVIDER_KIND,
                "provider": self.provider,
                "modelId": self.model,
                "latencyMs": round(call.seconds * 1000),
                "tokensIn": call.tokens_in,
                "tokensOut": call.tokens_out,
                "costCents": round(cost, 4),
                "status": "cancelled" if call.cancelled else ("error" if error else "ok"),
            }
            if error:
                span["error"] = {"type": error, "message": scrub(type(call.error).__name__, limit=100)}
            log_event(log, "provider.chat", logging.WARNING if error else logging.INFO, **span)
        except Exception:
            self._guard("provider_done")

    def stream_done(self, out: StreamOutcome) -> None:
        """On the response thread, when the client saw the end (or left)."""
        try:
            self.metrics.chat_streams_open.labels(self.provider, self.model).dec()
            self.metrics.observe_chat_stream(
                self.provider,
                self.model,
                outcome=out.outcome,
                first_token_s=out.first_token_s,
                duration_s=out.duration_s,
            )
            log_event(
                log,
                "chat_stream",
                logging.WARNING if out.outcome in ("timeout", "error") else logging.INFO,
                provider=self.provider,
                modelId=self.model,
                firstTokenMs=None if out.first_token_s is None else round(out.first_token_s * 1000),
                streamDurationMs=round(out.duration_s * 1000),
                disconnect=out.outcome == "disconnect",
                outcome=out.outcome,
                error=out.error_type,
                chunks=out.chunks,
                replyChars=out.chars,
                **self.fields,
            )
        except Exception:
            self._guard("stream_done")
