"""Word choice that persuades or obscures: benefits, calls to action, listener focus, feeling, proof, jargon.

Lowercase phrases matched on whole words of a sentence's tokens (hyphens split words, so "low-hanging"
is written "low hanging"). Kept apart from `lexicon.py` so a sales coach can review these lists alone.
"""

from __future__ import annotations

__all__ = ["BENEFITS", "CALLS_TO_ACTION", "EMOTION", "PROOF", "JARGON", "LISTENER_WORDS", "SPEAKER_WORDS"]

# What the listener gains: a verb of gain or relief, or a link from a feature to its payoff.
BENEFITS = (
    "save",
    "saves",
    "saving",
    "cut",
    "cuts",
    "reduce",
    "reduces",
    "lower",
    "lowers",
    "grow",
    "grows",
    "increase",
    "increases",
    "boost",
    "boosts",
    "improve",
    "improves",
    "faster",
    "cheaper",
    "easier",
    "safer",
    "so that you",
    "so you can",
    "means you",
    "helps you",
    "help you",
    "lets you",
    "no more",
    "free up",
    "frees up",
    "pays for itself",
    "pay for itself",
    "return on",
    "fewer errors",
    "less time",
    "more time",
)

# Asking for the next step.
CALLS_TO_ACTION = (
    "shall we",
    "would you like to",
    "can we schedule",
    "let's schedule",
    "let's set up",
    "let's book",
    "let's start",
    "book a",
    "schedule a",
    "set up a call",
    "set up a demo",
    "sign up",
    "start a trial",
    "free trial",
    "next step",
    "next steps",
    "get started",
    "give it a try",
    "are you ready to",
    "can i send you",
    "let me send you",
    "i'll send you",
    "how about we",
    "move forward",
    "place an order",
    "sign the",
)

EMOTION = (
    "imagine",
    "picture",
    "worry",
    "worried",
    "stress",
    "stressful",
    "frustrating",
    "frustrated",
    "peace of mind",
    "confident",
    "excited",
    "exciting",
    "proud",
    "relief",
    "relieved",
    "pain",
    "painful",
    "afraid",
    "tired of",
    "sick of",
    "nightmare",
    "love",
    "enjoy",
    "happier",
)

# Evidence beyond a number (numbers are counted by `features`).
PROOF = (
    "for example",
    "for instance",
    "case study",
    "customers like",
    "clients like",
    "one customer",
    "one client",
    "our customers",
    "results",
    "data shows",
    "studies show",
    "proven",
    "we tested",
    "we measured",
)

# Buzzwords that make a listener translate (the front end's level-1 example: "a new synergistic
# paradigm leveraging our backend architecture").
JARGON = (
    "synergy",
    "synergies",
    "synergistic",
    "leverage",
    "leveraging",
    "leveraged",
    "paradigm",
    "holistic",
    "bandwidth",
    "circle back",
    "deep dive",
    "low hanging fruit",
    "move the needle",
    "best of breed",
    "value add",
    "ideate",
    "ideation",
    "learnings",
    "actionable insights",
    "game changer",
    "core competency",
    "core competencies",
    "thought leadership",
    "mission critical",
    "operationalize",
    "utilize",
    "touch base",
    "win win",
    "boil the ocean",
    "blue sky thinking",
)

LISTENER_WORDS = frozenset({"you", "your", "yours", "you're", "you'll", "you've", "you'd"})
SPEAKER_WORDS = frozenset(
    {"i", "me", "my", "we", "us", "our", "ours", "i'm", "we're", "i've", "we've", "i'll", "we'll"}
)
