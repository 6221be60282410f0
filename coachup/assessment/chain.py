"""The assessment runnable (`prompt | chat model | {raw, parsed}`) and the `Assessor` built on it.

The chain keeps the raw `AIMessage` next to the parsed reply so token usage and the answering model's
name come from `usage_metadata` / `response_metadata` without a callback. Whatever the provider, the
model only judges criteria and scores; the level is computed here from the met criteria
(`level.level_from_criteria`) and stated in the first feedback line, and any level or grade the model
writes in its text is dropped, so no text contradicts the level. A reply that fails the schema (or
judges none of the skill's criteria) is a `PermanentError` of type `invalid_output`: a model that
answers off-schema usually does so again (temperature 0), so retrying burns tokens; the job goes to
the dead-letter queue where an operator can redrive it after fixing the prompt or the model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.runnables import Runnable, RunnableConfig, RunnableParallel, RunnablePassthrough

from coachup.assessment.level import level_from_criteria, level_sentence
from coachup.assessment.pricing import cost_usd, price_for
from coachup.assessment.prompt import PROMPT_VERSION, build_prompt, prompt_inputs
from coachup.assessment.schema import AssessmentReply
from coachup.assessment.types import CATEGORIES, RUBRIC_VERSION, CriterionVerdict, Skill, SkillResult, Turn
from coachup.assessment.upstream import INVALID_OUTPUT, classify_error
from coachup.errors import PermanentError

__all__ = ["build_chain", "ChainAssessor"]

# "level 3", "3/5", "7 / 10", "a score of 4", "grade B": a verdict only our level function may state
_STATES_A_GRADE = re.compile(
    r"\blevel\s*(?:of\s*)?\d|\b\d+(?:\.\d+)?\s*/\s*(?:5|10)\b|\bscored?\s+(?:of\s+)?\d|\bgrade\b", re.IGNORECASE
)


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
        verdicts = _verdicts(skill, reply)
        level = level_from_criteria(verdicts)
        if level is None:
            raise PermanentError("model reply judged none of the skill's criteria", type=INVALID_OUTPUT)
        answer = reply.scores.model_dump()
        usage = getattr(raw, "usage_metadata", None) or {}
        tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        answered_by = (getattr(raw, "response_metadata", None) or {}).get("model_name")
        priced_model = answered_by if price_for(answered_by) else self.model
        return SkillResult(
            skill_id=skill.id,
            rubric_hash=skill.rubric_hash,
            status="assessed",
            level=level,
            # a focus category the model left out falls back to its score of the whole answer
            scores={c: round(float(reply.skill_scores.get(c, answer[c])), 3) for c in skill.focus},
            answer_scores={c: round(float(answer[c]), 3) for c in CATEGORIES},
            criteria=verdicts,
            feedback=[level_sentence(skill.title, level, verdicts), *_clean(reply.feedback)],
            highlights=_clean(reply.highlights),
            recommendations=_clean(reply.recommendations),
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd(priced_model, tokens_in, tokens_out),
            latency_ms=int((time.monotonic() - started) * 1000),
        )


def _verdicts(skill: Skill, reply: AssessmentReply) -> list[CriterionVerdict]:
    """One verdict per criterion of the skill, in rubric order; ids the skill lacks are ignored, the
    first judgement of a repeated id wins, and a criterion the model skipped stays unjudged (None)."""
    judged: dict[str, bool] = {}
    for item in reply.criteria:
        judged.setdefault(item.id, item.met)
    return [CriterionVerdict(c.id, c.text, judged.get(c.id)) for c in skill.criteria]


def _clean(lines: Iterable[str]) -> list[str]:
    """Non-empty lines, stripped, without any that state a level or grade of their own."""
    return [line.strip() for line in lines if line.strip() and not _STATES_A_GRADE.search(line)]
