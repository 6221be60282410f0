"""The offline, deterministic assessor as a LangChain chat model (the default provider).

It reads the skill and the speaker's turns back out of the rendered prompt, scores them with the pure
`features` / `heuristic` / `checks` modules and answers with the JSON the schema expects, so it runs
through exactly the same prompt | model | parser chain as a real LLM.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from coachup.assessment.checks import explain, judge_criteria
from coachup.assessment.features import extract_features
from coachup.assessment.heuristic import category_scores, skill_scores
from coachup.assessment.library import CHECKS
from coachup.assessment.prompt import PromptRequest, parse_prompt

__all__ = ["HEURISTIC_MODEL", "HeuristicChatModel", "heuristic_reply"]

HEURISTIC_MODEL = "heuristic-v2"


def heuristic_reply(request: PromptRequest) -> dict[str, Any]:
    """The schema-shaped reply (see `schema.AssessmentReply`) for one parsed prompt.

    Criteria come back judged by their library checks (a criterion outside the library is left out, so
    it stays unjudged); the level is not part of the reply, the chain computes it from these verdicts.
    """
    features = extract_features(request.turn_texts)
    verdicts = judge_criteria(request.criteria, features, CHECKS)
    feedback, highlights, recommendations = explain(request.criteria, verdicts, features, CHECKS)
    return {
        "skill_id": request.skill_id,
        "criteria": [{"id": v.id, "met": v.met} for v in verdicts if v.met is not None],
        "scores": category_scores(features),
        "skill_scores": skill_scores(features, request.criteria),
        "feedback": feedback,
        "highlights": highlights,
        "recommendations": recommendations,
    }


class HeuristicChatModel(BaseChatModel):
    """Answers assessment prompts from text features; no network, no randomness, zero tokens."""

    model_name: str = HEURISTIC_MODEL

    @property
    def _llm_type(self) -> str:
        return "coachup-heuristic"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        system = "\n".join(m.text for m in messages if m.type == "system")
        human = "\n".join(m.text for m in messages if m.type == "human")
        reply = heuristic_reply(parse_prompt(system, human))
        message = AIMessage(
            content=json.dumps(reply, ensure_ascii=False),
            usage_metadata={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name})
