"""Word lists behind the heuristic features. Lowercase; multi-word entries are matched on whole words.

Kept apart from `features.py` so the lists can grow (or be reviewed by a coach) without touching the code.
"""

from __future__ import annotations

__all__ = [
    "FILLER_SOUNDS",
    "FILLER_WORDS",
    "CONTEXT_FILLERS",
    "DISCOURSE_OPENERS",
    "HEDGES",
    "PADDING_PHRASES",
    "APPROVAL_TAGS",
    "SIGNPOSTS",
    "COMMITMENTS",
    "NUMBER_WORDS",
    "STOPWORDS",
    "NOUN_DETERMINERS",
    "AUXILIARIES",
    "PREPOSITIONS",
    "PAST_OR_BASE_AFTER_HAVE",
    "LEGIT_DOUBLES",
]

# Hesitation sounds: always fillers.
FILLER_SOUNDS = frozenset({"um", "umm", "uh", "uhm", "uhh", "er", "erm", "ah", "hmm", "mm"})

# Words that carry no content in speech whatever their position.
FILLER_WORDS = frozenset({"basically", "literally"})

# Fillers only in context (see `features._filler_positions`): "like", "you know", "i mean", "kind of", "sort of".
CONTEXT_FILLERS = (("you", "know"), ("i", "mean"), ("kind", "of"), ("sort", "of"))

# Sentence openers that are fillers when followed by a comma ("So, ...") or, for "well", always.
DISCOURSE_OPENERS = frozenset({"so", "well", "okay", "ok", "right", "yeah"})

HEDGES = (
    "maybe",
    "perhaps",
    "possibly",
    "probably",
    "somewhat",
    "might",
    "arguably",
    "i think",
    "i believe",
    "i guess",
    "i suppose",
    "i feel like",
    "i would say",
    "or so",
    "more or less",
    "if that makes sense",
    "a bit",
    "a little",
    "to some extent",
    "not sure",
    "not totally sure",
    "not really sure",
    "not entirely sure",
    "not quite sure",
)

# Phrases that lengthen a sentence without adding meaning.
PADDING_PHRASES = (
    "the thing is",
    "the thing about",
    "the thing was",
    "the reason that",
    "the reason why",
    "the reason is",
    "is because",
    "which means that",
    "in order to",
    "at the end of the day",
    "the fact that",
    "what i want to say is",
    "i just wanted to",
    "as i said",
    "needless to say",
    "when it comes to",
    "to be honest",
    "for all intents and purposes",
    "it is what it is",
    "and so on",
)

APPROVAL_TAGS = (
    "if that makes sense",
    "does that make sense",
    "or something",
    "and stuff",
    "i don't know",
    "you know what i mean",
)

SIGNPOSTS = (
    "first",
    "firstly",
    "second",
    "secondly",
    "third",
    "next",
    "then",
    "finally",
    "because",
    "therefore",
    "so that",
    "as a result",
    "for example",
    "for instance",
    "in short",
    "overall",
    "in summary",
    "to summarize",
    "however",
    "meanwhile",
)

COMMITMENTS = (
    "will",
    "i'll",
    "we'll",
    "propose",
    "recommend",
    "decided",
    "plan to",
    "my goal",
    "our goal",
    "commit",
    "should",
    "must",
    "need to",
    "going to",
)

NUMBER_WORDS = frozenset(
    {
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "hundred",
        "thousand",
        "million",
        "billion",
        "percent",
        "half",
        "third",
        "quarter",
        "fifth",
        "twice",
        "dozen",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "yesterday",
        "today",
        "tomorrow",
        "quarterly",
        "weekly",
        "monthly",
    }
)

STOPWORDS = frozenset(
    """
a an the and or but if so of to in on at by for with from as into about than then that this these those
it its is are was were be been being am do does did have has had having i me my we us our you your he him
his she her they them their what which who whom whose there here when where why how not no yes all any
some can could would should will shall may might must just also very too up out over again more most
such only own same other each few both very s t don't doesn't didn't isn't aren't wasn't weren't won't
i'm i've we're we've they're it's that's there's let's
""".split()
)

# A noun use of "kind of" / "sort of" follows one of these ("a kind of tool").
NOUN_DETERMINERS = frozenset(
    {
        "a",
        "the",
        "this",
        "that",
        "what",
        "which",
        "any",
        "some",
        "one",
        "every",
        "each",
        "same",
        "these",
        "those",
        "no",
        "another",
        "different",
    }
)

# "does he have", "let it do": a base verb after a third-person pronoun is fine after these.
AUXILIARIES = frozenset(
    {
        "does",
        "did",
        "do",
        "will",
        "would",
        "can",
        "could",
        "should",
        "might",
        "must",
        "may",
        "shall",
        "let",
        "make",
        "makes",
        "made",
        "help",
        "helps",
        "helped",
        "watch",
        "see",
        "saw",
        "have",
        "has",
        "had",
        "to",
        "doesn't",
        "didn't",
        "won't",
        "wouldn't",
        "can't",
        "couldn't",
        "shouldn't",
    }
)

PREPOSITIONS = frozenset(
    {
        "to",
        "for",
        "with",
        "of",
        "about",
        "from",
        "by",
        "like",
        "than",
        "between",
        "among",
        "against",
        "without",
    }
)

# After have/has/had these forms are errors ("have show", "had went"); participles are not listed.
PAST_OR_BASE_AFTER_HAVE = frozenset(
    {
        "go",
        "show",
        "take",
        "write",
        "see",
        "give",
        "eat",
        "speak",
        "break",
        "choose",
        "drive",
        "fall",
        "forget",
        "begin",
        "went",
        "took",
        "wrote",
        "saw",
        "gave",
        "ate",
        "spoke",
        "broke",
        "chose",
        "drove",
        "fell",
        "forgot",
        "began",
        "did",
    }
)

# Doubles that are grammatical ("that that", "had had") and so are not stutters.
LEGIT_DOUBLES = frozenset({"that", "had"})
