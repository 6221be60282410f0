"""Choose and build the assessor from `Settings`: `heuristic` (offline default), `openai`, or an injected model.

The OpenAI client is created here, on demand (after a prefork worker has forked), with retries off so
Celery's autoretry owns retrying, and with the request's correlation headers bound to every call.
"""

from __future__ import annotations

from collections.abc import Mapping

from coachup.assessment.chain import ChainAssessor
from coachup.assessment.heuristic_model import HEURISTIC_MODEL, HeuristicChatModel
from coachup.assessment.types import Assessor, SkillResult
from coachup.errors import ProviderUnconfigured
from coachup.settings import Settings

__all__ = ["build_assessor", "Assessor", "SkillResult", "ChainAssessor"]


def build_assessor(settings: Settings, *, headers: Mapping[str, str] | None = None, chat_model=None) -> Assessor:
    """The assessor for `settings.assess_provider`; `chat_model` (tests) overrides it as provider "fake".

    `headers` (x-request-id, traceparent, ...) are sent on every upstream call. Raises
    `ProviderUnconfigured` when the provider lacks what it needs (an API key, the langchain-openai extra).
    """
    if chat_model is not None:
        return ChainAssessor(chat_model, provider="fake", model=_model_name(chat_model))
    provider = settings.assess_provider
    if provider == "heuristic":
        return ChainAssessor(HeuristicChatModel(), provider="heuristic", model=HEURISTIC_MODEL)
    if provider == "openai":
        return _openai_assessor(settings, headers or {})
    raise ProviderUnconfigured(f"assessment provider {provider!r} has no built-in model; pass chat_model=")


def _openai_assessor(settings: Settings, headers: Mapping[str, str]) -> Assessor:
    if not settings.openai_api_key:
        raise ProviderUnconfigured("OPENAI_API_KEY missing")
    try:
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr
    except ImportError:  # the `openai` extra is not installed
        raise ProviderUnconfigured("langchain-openai is not installed: pip install 'coachup[openai]'") from None
    llm = ChatOpenAI(
        model=settings.openai_assess_model,
        api_key=SecretStr(settings.openai_api_key),  # masked in any repr of the model
        base_url=settings.openai_base_url or None,
        timeout=settings.skill_timeout_ms / 1000,
        max_retries=0,  # Celery's autoretry owns retries (backoff, jitter, dead letters)
        temperature=0,
    )
    bound = llm.bind(response_format={"type": "json_object"}, extra_headers=dict(headers))
    return ChainAssessor(bound, provider="openai", model=settings.openai_assess_model)


def _model_name(chat_model) -> str:
    for attr in ("model_name", "model"):
        value = getattr(chat_model, attr, None)
        if isinstance(value, str) and value:
            return value
    return getattr(chat_model, "_llm_type", None) or type(chat_model).__name__
