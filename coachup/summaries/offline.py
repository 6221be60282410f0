"""The offline summariser as a LangChain chat model: it reads the previous summary and the conversation
back out of the summary prompt (`service.summary_messages`) and answers with `extract.summarise_extractive`."""

from __future__ import annotations

import math
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from .extract import summarise_extractive

__all__ = ["OFFLINE_SUMMARY_MODEL", "OfflineSummaryModel", "PREVIOUS_PREFIX", "INSTRUCTION"]

OFFLINE_SUMMARY_MODEL = "summary-offline-v1"
PREVIOUS_PREFIX = "Previous summary:\n"
INSTRUCTION = "Write the updated summary now."


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


class OfflineSummaryModel(BaseChatModel):
    """Deterministic extractive summariser; `budget_tokens` bounds the summary (~4 characters a token)."""

    model_name: str = OFFLINE_SUMMARY_MODEL
    budget_tokens: int = 600

    @property
    def _llm_type(self) -> str:
        return "coachup-offline-summary"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prev, turns = "", []
        for m in messages:
            text = _text(m)
            if isinstance(m, SystemMessage):
                if text.startswith(PREVIOUS_PREFIX):
                    prev = text[len(PREVIOUS_PREFIX) :]
            elif isinstance(m, HumanMessage) and text != INSTRUCTION:
                turns.append(("user", text))
            elif isinstance(m, AIMessage):
                turns.append(("assistant", text))
        summary = summarise_extractive(prev, turns, self.budget_tokens)
        tokens_in = sum(math.ceil(len(_text(m)) / 4) for m in messages)
        tokens_out = math.ceil(len(summary) / 4)
        message = AIMessage(
            summary,
            usage_metadata={
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
