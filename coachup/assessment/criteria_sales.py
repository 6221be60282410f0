"""Library criteria of a persuasive pitch, after the front end's rubric for `sales_persuasiveness`:
benefits rather than features, a value the listener can feel, proof, and a clear call to action."""

from __future__ import annotations

from coachup.assessment.checks import Entry, entry, per100, plural
from coachup.assessment.features import Features

__all__ = ["ENTRIES"]


def _balance(f: Features) -> str:
    """ "3 'you' words against 1 'I/we' word"."""
    you, me = plural(f.listener_words, "'you' word"), plural(f.speaker_words, "'I/we' word")
    return f"{you[0].upper()}{you[1:]} against {me}"


ENTRIES: tuple[Entry, ...] = (
    entry(
        "states_benefits",
        "States what the listener gains (saves time, cuts cost, so you can ...).",
        "clarity",
        "benefits",
        lambda f: f.benefits >= 1,
        lambda f: f"Named {plural(f.benefits, 'benefit')} for the listener.",
        lambda f: "No benefit named; say what the listener gains (time, money, less risk), not only what it does.",
    ),
    entry(
        "listener_focus",
        "Talks about the listener at least as much as about itself ('you', 'your' vs 'I', 'we', 'our').",
        "clarity",
        "listener",
        lambda f: f.listener_words >= max(1, f.speaker_words),
        lambda f: f"Spoke to the listener: {_balance(f)}.",
        lambda f: f"{_balance(f)}; turn each 'we offer' into 'you get'.",
    ),
    entry(
        "backs_with_proof",
        "Backs the claim with proof: a number, a result or a customer example.",
        "clarity",
        "proof",
        lambda f: f.numbers + f.proof >= 1,
        lambda f: f"Backed the pitch with {plural(f.numbers + f.proof, 'piece')} of proof (numbers, results).",
        lambda f: "No proof; add one number or one customer result.",
    ),
    entry(
        "appeals_to_feeling",
        "Appeals to how the listener feels (imagine, peace of mind, no more stress).",
        "clarity",
        "emotion",
        lambda f: f.emotion >= 1,
        lambda f: "Spoke to how the listener feels, not only to the facts.",
        lambda f: "No emotional appeal; help the listener picture the relief or the win.",
    ),
    entry(
        "clear_call_to_action",
        "Asks for a clear next step (a call, a demo, a trial, a decision).",
        "clarity",
        "call_to_action",
        lambda f: f.calls_to_action >= 1,
        lambda f: "Ended with a clear next step.",
        lambda f: "No call to action; finish by asking for one concrete next step.",
    ),
    entry(
        "confident_claims",
        "States claims confidently: fewer than 2 hedges per 100 words.",
        "clarity",
        "hedges",
        lambda f: per100(f, f.hedges) < 2,
        lambda f: f"{plural(f.hedges, 'hedge').capitalize()} in {f.words} words: claims sounded sure.",
        lambda f: f"{plural(f.hedges, 'hedge')} ({per100(f, f.hedges):.1f} per 100 words); drop 'maybe' and 'I think'.",
    ),
)
