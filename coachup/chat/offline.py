"""The offline chat model (the default provider): a LangChain `BaseChatModel` that streams the coach's reply
(`coach.coach_reply`) word by word with configurable pacing, and reports token usage like a real provider.

Pacing stands in for a real model's thinking time and token rate, so streams, heartbeats and deadlines behave
as they will in production; tests set both delays to 0. No key, no network, no model weights.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from .coach import CoachTurn, coach_reply
from .prompt import GOALS_PREFIX

__all__ = ["OFFLINE_CHAT_MODEL", "OfflineCoachModel"]

OFFLINE_CHAT_MODEL = "coach-offline-v1"
_TOKEN = re.compile(r"\S+\s*")


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))  # ~4 characters per token, as OpenAI's rule of thumb


class OfflineCoachModel(BaseChatModel):
    """Deterministic coach. `first_token_s` is its thinking time, `token_s` the gap between two tokens."""

    model_name: str = OFFLINE_CHAT_MODEL
    first_token_s: float = 0.25
    token_s: float = 0.03

    @property
    def _llm_type(self) -> str:
        return "coachup-offline-coach"

    def reply_for(self, messages: list[BaseMessage]) -> str:
        """The whole reply to the conversation in `messages` (the last human message is the new one)."""
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        goals: tuple[str, ...] = ()
        for m in messages:
            if isinstance(m, SystemMessage):
                for line in _text(m).splitlines():
                    if line.startswith(GOALS_PREFIX):
                        goals = tuple(g.strip() for g in line[len(GOALS_PREFIX) :].split(";") if g.strip())
        text = _text(humans[-1]) if humans else ""
        return coach_reply(CoachTurn(text=text, earlier_user_turns=max(0, len(humans) - 1), goals=goals))

    def _usage(self, messages: list[BaseMessage], reply_tokens: int) -> UsageMetadata:
        tokens_in = sum(_estimate_tokens(_text(m)) for m in messages)
        return {"input_tokens": tokens_in, "output_tokens": reply_tokens, "total_tokens": tokens_in + reply_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.reply_for(messages)
        message = AIMessage(
            reply,
            usage_metadata=self._usage(messages, len(_TOKEN.findall(reply))),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        tokens = _TOKEN.findall(self.reply_for(messages))
        if self.first_token_s > 0:
            time.sleep(self.first_token_s)
        for i, token in enumerate(tokens):
            if i and self.token_s > 0:
                time.sleep(self.token_s)
            last = i == len(tokens) - 1
            # usage and the model name ride on the last chunk only (LangChain adds usage up and would
            # concatenate a model name repeated on every chunk)
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=token,
                    usage_metadata=self._usage(messages, len(tokens)) if last else None,
                    response_metadata={"model_name": self.model_name} if last else {},
                )
            )
