"""The chat prompt: one system message (coach persona, learner profile and goals, the session summary), the
history as user/assistant messages, and the new user message last.

The same messages go to every provider; the offline coach reads them back the way an LLM would.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from coachup.errors import ValidationFailed

from .inputs import ChatInputs, Message

__all__ = ["DEFAULT_SYSTEM_PROMPT", "GOALS_PREFIX", "SUMMARY_PREFIX", "build_prompt", "resolve_prompt"]

DEFAULT_SYSTEM_PROMPT = (
    "You are Coach Up, a friendly speaking coach. Answer in two to four short spoken sentences: react to what "
    "the learner just said, give one concrete tip about how they said it, and ask one question that keeps them "
    "talking. When the learner says goodbye, wish them good luck."
)
GOALS_PREFIX = "Learner goals: "
PROFILE_PREFIX = "About the learner: "
SUMMARY_PREFIX = "Summary of the session so far: "
_MAX_EXTRA_CHARS = 600


def resolve_prompt(prompt: str | None, history: tuple[Message, ...]) -> tuple[str, tuple[Message, ...]]:
    """(the new user message, the history before it). The voice loop sends the prompt and also appends it to
    the history; the chat page sends only the history. Either way the new message is counted once."""
    if history and history[-1].role == "user" and (not prompt or history[-1].content.strip() == prompt.strip()):
        return history[-1].content, history[:-1]
    if prompt and prompt.strip():
        return prompt, history
    raise ValidationFailed("prompt is required (or a history ending with a user message)")


def _goal_text(goal: Any) -> str:
    if isinstance(goal, dict):
        for key in ("title", "goal", "name", "description", "text"):
            if isinstance(goal.get(key), str) and goal[key].strip():
                return goal[key].strip()
        return ""
    return goal.strip() if isinstance(goal, str) else ""


def _profile_text(profile: dict[str, Any]) -> str:
    nested = profile.get("profile")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else profile
    parts = [f"{k}: {v}" for k, v in inner.items() if isinstance(v, (str, int, float)) and str(v).strip()]
    return "; ".join(parts)


def _system_text(inputs: ChatInputs) -> str:
    parts = [inputs.system_prompt or DEFAULT_SYSTEM_PROMPT]
    if inputs.user_profile:
        profile = _profile_text(inputs.user_profile)
        if profile:
            parts.append(PROFILE_PREFIX + profile[:_MAX_EXTRA_CHARS])
    goals = [g for g in (_goal_text(x) for x in inputs.user_goals) if g]
    if goals:
        parts.append(GOALS_PREFIX + "; ".join(goals)[:_MAX_EXTRA_CHARS])
    has_summary = any(m.role == "system" for m in inputs.history)
    if inputs.summary and not has_summary:
        parts.append(SUMMARY_PREFIX + inputs.summary[:3200])
    return "\n\n".join(parts)


def build_prompt(inputs: ChatInputs) -> tuple[list[BaseMessage], dict[str, str]]:
    """(LangChain messages, the `prompt` event payload `{system, user}`)."""
    system = _system_text(inputs)
    messages: list[BaseMessage] = [SystemMessage(system)]
    for m in inputs.history:
        if m.role == "user":
            messages.append(HumanMessage(m.content))
        elif m.role == "assistant":
            messages.append(AIMessage(m.content))
        else:  # the front end sends the rolling summary as a system item
            messages.append(SystemMessage(SUMMARY_PREFIX + m.content))
    messages.append(HumanMessage(inputs.prompt))
    return messages, {"system": system, "user": inputs.prompt}
