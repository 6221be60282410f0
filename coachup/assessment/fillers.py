"""Filler words in context: "um" always, "like" and "you know" only where they carry no meaning."""

from __future__ import annotations

from coachup.assessment import lexicon as lx

__all__ = ["filler_positions", "is_number"]


def filler_positions(tokens: list[str]) -> tuple[set[int], list[str]]:
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
            or (tok == "like" and (prev in (",", None) or comma_next or is_number(nxt)))
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


def is_number(token: str | None) -> bool:
    return token is not None and (token.isdigit() or token in lx.NUMBER_WORDS)
