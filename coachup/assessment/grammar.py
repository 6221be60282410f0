"""Cheap grammar proxies over one sentence's words: patterns a coach would flag at once, no parser.

Each rule trades recall for precision: it looks at two or three neighbouring words and only fires on
combinations that are almost never correct in spoken English ("we was", "they doesn't", "have show").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from coachup.assessment import lexicon as lx

__all__ = ["grammar_errors", "GRAMMAR_KINDS"]

GRAMMAR_KINDS = ("agreement", "pronoun_case", "verb_form", "double_negative", "lowercase_i")

_PLURAL_SUBJECTS = frozenset({"we", "they", "you"})
_SINGULAR_VERBS = frozenset({"was", "is", "has", "does", "doesn't", "wasn't", "isn't", "hasn't"})
_THIRD_SINGULAR = frozenset({"he", "she", "it"})
_PLURAL_VERBS = frozenset({"were", "are", "have", "do", "don't", "weren't", "aren't", "haven't"})
_I_WRONG = frozenset({"is", "are", "has", "does", "doesn't", "isn't", "aren't", "hasn't"})
_OBJECT_PRONOUNS = frozenset({"me", "him", "her", "them", "us"})
_FINITE_AFTER_SUBJECT = frozenset(
    {
        "goes",
        "went",
        "was",
        "were",
        "is",
        "are",
        "has",
        "does",
        "doesn't",
        "isn't",
        "wasn't",
        "weren't",
    }
)
_DETERMINERS = frozenset({"the", "these", "those", "our", "their", "my", "your", "his", "her", "its"})
_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "ics", "ous", "news", "ness", "'s")
_MODALS = frozenset({"could", "should", "would", "must", "might"})
_HAVE = frozenset({"have", "has", "had", "haven't", "hasn't", "hadn't"})
_NEGATORS = frozenset({"not", "don't", "doesn't", "didn't", "can't", "won't", "never", "ain't", "wasn't", "isn't"})
_NEGATIVE_OBJECTS = frozenset({"nothing", "nobody", "none", "nowhere"})
_BARE_PARTICIPLE_SUBJECTS = frozenset({"i", "we", "they", "you", "he", "she"})
_PLURAL_QUANTITIES = frozenset({"two", "three", "four", "five", "many", "several", "lots", "few", "some"})
_PARTICIPLES_NEEDING_HAVE = frozenset({"seen", "done", "gone", "been", "taken", "written"})


def grammar_errors(words: Sequence[str]) -> Counter:
    """Counter of error kinds (see GRAMMAR_KINDS, minus `lowercase_i`) in one sentence of lowercase words."""
    found: Counter = Counter()
    for i, word in enumerate(words):
        prev = words[i - 1] if i > 0 else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        if nxt is None:
            break
        found["agreement"] += _agreement(prev, word, nxt, words[i + 2] if i + 2 < len(words) else None)
        found["pronoun_case"] += _pronoun_case(i, prev, word, nxt)
        found["verb_form"] += (
            (word in _MODALS and nxt == "of")
            or (word in _HAVE and nxt in lx.PAST_OR_BASE_AFTER_HAVE)
            or (word in _BARE_PARTICIPLE_SUBJECTS and nxt in _PARTICIPLES_NEEDING_HAVE and prev not in _HAVE)
        )
        found["double_negative"] += word in _NEGATORS and (
            nxt in _NEGATIVE_OBJECTS or (i + 2 < len(words) and words[i + 2] in _NEGATIVE_OBJECTS)
        )
    return Counter({k: v for k, v in found.items() if v})


def _agreement(prev: str | None, word: str, nxt: str, after: str | None) -> int:
    """Subject-verb disagreement: "we was", "they doesn't", "he don't", "i is", "the numbers is"."""
    if prev in lx.AUXILIARIES:
        return 0  # questions and infinitives: "does he have", "was it", "let it do"
    if word in _PLURAL_SUBJECTS and nxt in _SINGULAR_VERBS:
        return 1
    if word in _THIRD_SINGULAR and nxt in _PLURAL_VERBS:
        return 1
    if word == "i" and nxt in _I_WRONG:
        return 1
    if (
        prev in _DETERMINERS
        and word.endswith("s")
        and not word.endswith(_NOT_PLURAL_ENDINGS)
        and len(word) > 3
        and nxt in ("is", "was", "isn't", "wasn't", "has", "does", "doesn't")
    ):
        return 1
    if word == "there" and nxt in ("is", "was") and after in _PLURAL_QUANTITIES:
        return 1
    return 0


def _pronoun_case(i: int, prev: str | None, word: str, nxt: str) -> int:
    """An object pronoun as a subject: "me and him went", "him goes"."""
    if word not in _OBJECT_PRONOUNS:
        return 0
    if i == 0 and nxt == "and":
        return 1
    if nxt in _FINITE_AFTER_SUBJECT and prev in (None, "and"):
        return 1  # "him goes", "and them was": a governing verb or preposition before it would make it an object
    return 0
