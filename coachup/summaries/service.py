"""Summarise through the LangChain seam: `offline` (default, extractive, no network) or `openai` (any
OpenAI-compatible endpoint), chosen by `AI_PROVIDER_SUMMARY` → `AI_PROVIDER` → offline."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from coachup.errors import ProviderUnconfigured
from coachup.settings import Settings

from .offline import INSTRUCTION, OFFLINE_SUMMARY_MODEL, PREVIOUS_PREFIX, OfflineSummaryModel

__all__ = ["SummaryResult", "summarise", "summary_messages", "summary_model_name", "SYSTEM_PROMPT"]

SYSTEM_PROMPT = (
    "You keep the rolling summary of a speaking-coach session. Update the previous summary with the new "
    "messages in at most {budget} tokens, as short lines '- User: ...' and '- Coach: ...' that keep the "
    "learner's goals, what they practised and the coach's advice. Use only what was said; invent nothing."
)
SUMMARY_TIMEOUT_S = 20


@dataclass(frozen=True)
class SummaryResult:
    text: str  # "" when there was nothing to summarise
    provider: str
    model: str
    seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0


def summary_messages(prev: str, turns: Sequence[tuple[str, str]], budget: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT.format(budget=budget))]
    if prev.strip():
        messages.append(SystemMessage(PREVIOUS_PREFIX + prev.strip()))
    for role, content in turns:
        if role == "user":
            messages.append(HumanMessage(content))
        elif role == "assistant":
            messages.append(AIMessage(content))
    messages.append(HumanMessage(INSTRUCTION))
    return messages


def summary_model_name(settings: Settings) -> str:
    return OFFLINE_SUMMARY_MODEL if settings.summary_provider == "offline" else settings.openai_summary_model


def _model(settings: Settings, budget: int, headers: Mapping[str, str]):
    if settings.summary_provider == "offline":
        return OfflineSummaryModel(budget_tokens=budget)
    if not settings.openai_api_key:
        raise ProviderUnconfigured("OPENAI_API_KEY missing")
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    llm = ChatOpenAI(
        model=settings.openai_summary_model,
        api_key=SecretStr(settings.openai_api_key),
        base_url=settings.openai_base_url or None,
        timeout=SUMMARY_TIMEOUT_S,
        max_retries=0,  # the API answers, the job retries through Celery
        max_completion_tokens=budget,
        temperature=0,
    )
    return llm.bind(extra_headers=dict(headers))


def summarise(
    settings: Settings,
    prev: str,
    turns: Sequence[tuple[str, str]],
    *,
    budget: int,
    headers: Mapping[str, str] | None = None,
) -> SummaryResult:
    """The updated summary of `prev` plus `turns` ([(role, content)]); raises the provider's typed error."""
    from coachup.assessment.upstream import classify_error  # one classification for every LLM call

    provider, model = settings.summary_provider, summary_model_name(settings)
    if not any(content.strip() for role, content in turns if role in ("user", "assistant")):
        return SummaryResult("", provider, model)
    started = time.monotonic()
    try:
        reply = _model(settings, budget, headers or {}).invoke(summary_messages(prev, turns, budget))
    except ProviderUnconfigured:
        raise
    except Exception as exc:
        raise classify_error(exc) from exc
    usage = getattr(reply, "usage_metadata", None) or {}
    text = reply.content.strip() if isinstance(reply.content, str) else ""
    return SummaryResult(
        text,
        provider,
        model,
        time.monotonic() - started,
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
    )
