"""Explainable text features of a spoken answer, computed from the user's turns. Pure, deterministic, stdlib.

Every feature is a count or a simple ratio a coach can verify by hand. Sentences are split on `.`, `!`,
`?` and on turn boundaries; words are letters/digits with an optional apostrophe part ("doesn't").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from coachup.assessment import lexicon as lx
from coachup.assessment.grammar import grammar_errors

__all__ = ["Features", "extract_features", "split_sentences", "MATTR_WINDOW", "RUN_ON_WORDS", "FRAGMENT_WORDS"]

MATTR_WINDOW = 20  # words; moving-average type-token ratio window, so the ratio does not fall with length alone
RUN_ON_WORDS = 30  # a sentence longer than this is a run-on
FRAGMENT_WORDS = 3  # a sentence shorter than this (fillers excluded) is a fragment

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,;:]")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_PUNCT = re.compile(r"[,;:.!?\u2014]|\s-\s")  # a spaced dash is a pause; "follow-up" is not
_LOWER_I = re.compile(r"(?<![\w'.])i(?:'[a-z]+)?(?![\w']|\.e\.)")  # "i went", not "i.e."


@dataclass(frozen=True)
class Features:
    """Counts and ratios over the user's words. Rates elsewhere are per word; lengths are in words."""

    words: int = 0
    turns: int = 0
    sentences: int = 0
    mean_sentence_words: float = 0.0
    max_sentence_words: int = 0
    run_on_sentences: int = 0
    run_on_excess_words: int = 0
    fragments: int = 0
    fillers: int = 0
    filler_counts: dict[str, int] = field(default_factory=dict)
    hedges: int = 0
    hedge_counts: dict[str, int] = field(default_factory=dict)
    padding_phrases: int = 0
    padding_words: int = 0
    approval_tags: int = 0
    immediate_repeats: int = 0
    repeated_content_ratio: float = 0.0
    type_token_ratio: float = 0.0
    words_per_turn: float = 0.0
    grammar_errors: int = 0
    grammar_counts: dict[str, int] = field(default_factory=dict)
    punctuation_per_word: float = 0.0
    signposts: int = 0
    numbers: int = 0
    commitments: int = 0

    def rate(self, count: float) -> float:
        """`count` per word of the answer (0 for an empty answer)."""
        return count / self.words if self.words else 0.0


def split_sentences(text: str) -> list[str]:
    """Sentences of one turn, stripped, empties dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _filler_positions(tokens: list[str]) -> tuple[set[int], list[str]]:
    """(indices into `tokens` of filler words, one label per filler) for one sentence's tokens."""
    found: set[int] = set()
    labels: list[str] = []
    words = [i for i, t in enumerate(tokens) if t not in ",;:"]
    for k, i in enumerate(words):
        tok = tokens[i]
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        comma_next = nxt in (",", ";")
        if i in found:
            continue
        if (
            tok in lx.FILLER_SOUNDS
            or tok in lx.FILLER_WORDS
            or (tok == "like" and (prev in (",", None) or comma_next or _is_number(nxt)))
            or (
                tok in lx.DISCOURSE_OPENERS and (comma_next or tok == "well") and all(w in found for w in words[:k])
            )  # opens the sentence, fillers aside
            or (tok == "yeah" and prev == "," and nxt is None)
        ):
            found.add(i)
            labels.append(tok)
        elif k + 1 < len(words):
            j = words[k + 1]
            pair = (tok, tokens[j])
            if j != i + 1 or pair not in lx.CONTEXT_FILLERS:
                continue
            after = tokens[j + 1] if j + 1 < len(tokens) else None
            if pair[1] == "of":
                is_filler = prev not in lx.NOUN_DETERMINERS
            else:
                is_filler = prev == "," or after in (",", ";", None)  # parenthetical, not "you know the answer"
            if is_filler:
                found.update((i, j))
                labels.append(" ".join(pair))
    return found, labels


def _is_number(token: str | None) -> bool:
    return token is not None and (token.isdigit() or token in lx.NUMBER_WORDS)


def _count_phrases(joined: str, phrases: Sequence[str], counts: Counter | None = None) -> int:
    total = 0
    for phrase in phrases:
        hits = len(re.findall(rf"(?<![\w']){re.escape(phrase)}(?![\w'])", joined))
        if hits and counts is not None:
            counts[phrase] += hits
        total += hits
    return total


def _immediate_repeats(words: list[str]) -> int:
    """Stutters and restarts: a 1-3 word run said twice in a row ("the the", "the numbers the numbers")."""
    repeats, i = 0, 0
    while i < len(words):
        for n in (3, 2, 1):
            if i + 2 * n <= len(words) and words[i : i + n] == words[i + n : i + 2 * n]:
                if not (n == 1 and words[i] in lx.LEGIT_DOUBLES):
                    repeats += 1
                    i += n
                    break
        else:
            i += 1
            continue
    return repeats


def _mattr(words: list[str], window: int = MATTR_WINDOW) -> float:
    if not words:
        return 0.0
    if len(words) <= window:
        return len(set(words)) / len(words)
    ratios = [len(set(words[i : i + window])) / window for i in range(len(words) - window + 1)]
    return sum(ratios) / len(ratios)


def extract_features(turn_texts: Sequence[str]) -> Features:
    """Features of the user's answer given as one string per turn (empty turns are ignored)."""
    texts = [_normalise(t).strip() for t in turn_texts if t and t.strip()]
    fillers: Counter[str] = Counter()
    hedges: Counter[str] = Counter()
    grammar: Counter[str] = Counter()
    all_words: list[str] = []
    fluent_words: list[str] = []  # fillers removed
    sentence_lengths: list[int] = []
    counts: Counter[str] = Counter()
    for text in texts:
        counts["lower_i"] += len(_LOWER_I.findall(text))
        counts["punct"] += len(_PUNCT.findall(text))
        for sentence in split_sentences(text):
            tokens = _TOKEN.findall(sentence.lower())
            filler_at, filler_labels = _filler_positions(tokens)
            words = [t for t in tokens if t not in ",;:"]
            if not words:
                continue
            fillers.update(filler_labels)
            kept = [t for i, t in enumerate(tokens) if t not in ",;:" and i not in filler_at]
            joined = " ".join(words)
            _count_phrases(joined, lx.HEDGES, hedges)
            padding: Counter[str] = Counter()
            counts["padding"] += _count_phrases(joined, lx.PADDING_PHRASES, padding)
            counts["padding_words"] += sum(len(p.split()) * n for p, n in padding.items())
            counts["approval"] += _count_phrases(joined, lx.APPROVAL_TAGS)
            counts["signposts"] += _count_phrases(joined, lx.SIGNPOSTS)
            counts["commitments"] += _count_phrases(joined, lx.COMMITMENTS)
            counts["numbers"] += sum(1 for w in words if _is_number(w))
            counts["repeats"] += _immediate_repeats(kept)
            grammar.update(grammar_errors(kept))
            sentence_lengths.append(len(kept))
            all_words.extend(words)
            fluent_words.extend(kept)
    grammar["lowercase_i"] += counts["lower_i"]
    content = [w for w in fluent_words if w not in lx.STOPWORDS and len(w) > 2 and not w.isdigit()]
    n_words, n_sent = len(all_words), len(sentence_lengths)
    return Features(
        words=n_words,
        turns=len(texts),
        sentences=n_sent,
        mean_sentence_words=sum(sentence_lengths) / n_sent if n_sent else 0.0,
        max_sentence_words=max(sentence_lengths, default=0),
        run_on_sentences=sum(1 for n in sentence_lengths if n > RUN_ON_WORDS),
        run_on_excess_words=sum(n - RUN_ON_WORDS for n in sentence_lengths if n > RUN_ON_WORDS),
        fragments=sum(1 for n in sentence_lengths if n < FRAGMENT_WORDS),
        fillers=sum(fillers.values()),
        filler_counts=dict(fillers.most_common()),
        hedges=sum(hedges.values()),
        hedge_counts=dict(hedges.most_common()),
        padding_phrases=counts["padding"],
        padding_words=counts["padding_words"],
        approval_tags=counts["approval"],
        immediate_repeats=counts["repeats"],
        repeated_content_ratio=1 - len(set(content)) / len(content) if content else 0.0,
        type_token_ratio=_mattr(all_words),
        words_per_turn=n_words / len(texts) if texts else 0.0,
        grammar_errors=sum(grammar.values()),
        grammar_counts={k: v for k, v in grammar.items() if v},
        punctuation_per_word=counts["punct"] / n_words if n_words else 0.0,
        signposts=counts["signposts"],
        numbers=counts["numbers"],
        commitments=counts["commitments"],
    )
