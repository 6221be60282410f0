"""Which chat model answers: `offline` (default) or `openai` (any OpenAI-compatible endpoint), by
`AI_PROVIDER_CHAT` → `AI_PROVIDER` → offline, and which model name a request may ask for.

A request's `model` must be the configured model or one of `CHAT_MODEL_ALLOWLIST`: model is a metric label,
so it stays a bounded set. The OpenAI client is created lazily and cached per process (its httpx pool is
shared by every stream); retries are off, because a retried stream would repeat tokens the user has seen.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from langchain_core.runnables import Runnable

from coachup.errors import ProviderUnconfigured, ValidationFailed
from coachup.settings import Settings

from .offline import OFFLINE_CHAT_MODEL, OfflineCoachModel

__all__ = ["ChatModelChoice", "choose_chat_model", "build_chat_model", "OFFLINE_CHAT_MODEL"]

_cache: dict[tuple, object] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ChatModelChoice:
    provider: str  # offline | openai
    model: str


def choose_chat_model(settings: Settings, requested: str | None = None) -> ChatModelChoice:
    """The provider and model for one request; `ValidationFailed` for a model outside the allow-list,
    `ProviderUnconfigured` when `openai` has no key."""
    provider = settings.chat_provider
    default = OFFLINE_CHAT_MODEL if provider == "offline" else settings.openai_chat_model
    allowed = (default, *settings.chat_model_allowlist)
    model = (requested or "").strip() or default
    if model not in allowed:
        raise ValidationFailed(f"model must be one of: {', '.join(allowed)}")
    if provider == "openai" and not settings.openai_api_key:
        raise ProviderUnconfigured("OPENAI_API_KEY missing")
    return ChatModelChoice(provider, model)


def build_chat_model(settings: Settings, choice: ChatModelChoice, headers: Mapping[str, str]) -> Runnable:
    """A runnable whose `stream(messages)` yields `AIMessageChunk`s; `headers` go on every upstream call."""
    if choice.provider == "offline":
        return OfflineCoachModel(
            model_name=choice.model,
            first_token_s=settings.chat_offline_first_token_ms / 1000,
            token_s=settings.chat_offline_token_ms / 1000,
        )
    return _openai(settings, choice.model).bind(extra_headers=dict(headers))


def _openai(settings: Settings, model: str):
    # a read timeout just above the first-token deadline: a provider that goes silent frees its thread soon
    # after the stream has already told the client
    timeout = settings.chat_first_token_timeout_ms / 1000 + 2
    key = ("openai", model, settings.openai_base_url, settings.openai_api_key, timeout)
    with _lock:
        llm = _cache.get(key)
        if llm is None:
            try:
                from langchain_openai import ChatOpenAI
                from pydantic import SecretStr
            except ImportError:  # pragma: no cover - a declared dependency
                raise ProviderUnconfigured(
                    "langchain-openai is not installed: pip install 'langchain-openai'"
                ) from None
            llm = ChatOpenAI(
                model=model,
                api_key=SecretStr(settings.openai_api_key),
                base_url=settings.openai_base_url or None,
                timeout=timeout,
                max_retries=0,
                streaming=True,
                stream_usage=True,  # the last chunk carries prompt/completion tokens (stream_options.include_usage)
            )
            _cache[key] = llm
    return llm
