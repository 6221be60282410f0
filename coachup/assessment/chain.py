"""The assessment runnable (`prompt | chat model | {raw, parsed}`) and the `Assessor` built on it.

The chain keeps the raw `AIMessage` next to the parsed reply so token usage and the answering model's
name come from `usage_metadata` / `response_metadata` without a callback. A reply that fails the
schema is a `PermanentError` of type `invalid_output`: a model that answers off-schema for a prompt
usually does so again (temperature 0), so retrying burns tokens; the job goes to the dead-letter queue
where an operator can redrive it after fixing the prompt or the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.runnables import Runnable, RunnableConfig, RunnableParallel, RunnablePassthrough

from coachup.assessment.pricing import cost_usd, price_for
from coachup.assessment.prompt import PROMPT_VERSION, build_prompt, prompt_inputs
from coachup.assessment.schema import AssessmentReply
from coachup.assessment.types import CATEGORIES, RUBRIC_VERSION, Skill, SkillResult, Turn
from coachup.assessment.upstream import classify_error

__all__ = ["build_chain", "ChainAssessor"]


def build_chain(chat_model: Runnable) -> Runnable:
    """`ChatPromptTemplate | chat_model | {"raw": AIMessage, "parsed": AssessmentReply}`."""
    parser = PydanticOutputParser(pydantic_object=AssessmentReply)
    prompt = build_prompt().partial(format_instructions=parser.get_format_instructions())
    return prompt | chat_model | RunnableParallel(raw=RunnablePassthrough(), parsed=parser)


class ChainAssessor:
    """An `Assessor` over any LangChain chat model (or a model already bound with call options)."""

    def __init__(self, chat_model: BaseChatModel | Runnable, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.chain = build_chain(chat_model)

    def assess_skill(self, skill: Skill, turns: Sequence[Turn]) -> SkillResult:
        """Run the chain for one skill; raise a typed `coachup.errors` failure (see `upstream.classify_error`)."""
        started = time.monotonic()
        config: RunnableConfig = {
            "run_name": "coachup.assess_skill",
            "tags": [f"rubric:{RUBRIC_VERSION}", f"prompt:{PROMPT_VERSION}"],
            "metadata": {"skill_id": skill.id, "provider": self.provider, "model": self.model},
        }
        try:
            out = self.chain.invoke(prompt_inputs(skill, turns), config=config)
        except Exception as exc:  # classified, never swallowed
            raise classify_error(exc) from exc
        raw, reply = out["raw"], out["parsed"]
        usage = getattr(raw, "usage_metadata", None) or {}
        tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        answered_by = (getattr(raw, "response_metadata", None) or {}).get("model_name")
        priced_model = answered_by if price_for(answered_by) else self.model
        allowed = set(skill.criterion_ids)
        met = _unique(c for c in reply.met_criteria if c in allowed)
        unmet = _unique(c for c in reply.unmet_criteria if c in allowed and c not in met)
        scores = reply.scores.model_dump()
        return SkillResult(
            skill_id=skill.id,
            skill_hash=skill.skill_hash,
            level=reply.level,
            scores={c: round(float(scores[c]), 3) for c in CATEGORIES},
            met_criteria=met,
            unmet_criteria=unmet,
            feedback=reply.feedback.strip(),
            highlights=[h.strip() for h in reply.highlights if h.strip()],
            recommendations=[r.strip() for r in reply.recommendations if r.strip()],
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd(priced_model, tokens_in, tokens_out),
            latency_ms=int((time.monotonic() - started) * 1000),
        )


def _unique(ids) -> list[str]:
    seen: list[str] = []
    for cid in ids:
        if cid not in seen:
            seen.append(cid)
    return seen
