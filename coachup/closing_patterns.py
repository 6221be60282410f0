"""The phrases behind the closing-cue classifier (`coachup.interaction`), as regular expressions over a
normalised turn (lower case, straight apostrophes, quoted passages replaced by a placeholder).

Kept apart from the decision logic so a coach can review the lists without reading the rules. A pattern
says what a phrase *can* do (take leave, wrap up, wish well); whether the speaker is *doing* it in this
turn is decided by `interaction.ClosingClassifier` from where the phrase stands and what follows it.
"""

from __future__ import annotations

import re

__all__ = [
    "SIGNALS",
    "EXPLICIT_KINDS",
    "GREETING",
    "CLAUSE_HEAD_WORDS",
    "COORDINATORS",
    "REPORTING_VERBS",
    "SUBJECT_FOLLOWERS",
    "NOUN_FOLLOWERS",
    "INTERROGATIVE_START",
    "CONTINUATION",
    "OPEN_LET_US",
    "LATER",
    "SPOKEN_FORMS",
]

_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# When a parting speaker expects to meet again: "soon", "tomorrow", "next week", "on Thursday", "at the demo".
_WHEN = (
    rf"(?:later|soon|tomorrow|tonight|then|again|around|shortly|{_DAY}|the\s+weekend"
    rf"|(?:next|this|on|in|at)\s+(?:the\s+)?[a-z']+)"
)
# After a wrap-up phrase only the end of the clause (or a farewell joined by "and") may follow.
_END = r"(?=\s*(?:[.!,;:]|$|and\s+(?:thanks|thank|bye|goodbye|good\s+luck|see|have|take|talk)\b))"

LATER = re.compile(rf"\b(?:next\s+(?:time|session|week|lesson|class|call)|tomorrow|later|another\s+time|on\s+{_DAY})\b")

# kind -> patterns. "farewell" and "leave" are explicit leave-taking; "wrapup", "resume" and "wish" end a
# session only in the right place (a greeting that wishes luck opens one).
SIGNALS: dict[str, tuple[re.Pattern[str], ...]] = {
    "farewell": (
        re.compile(
            r"\b(?:good\s*-?\s*bye|bye(?:\s*-?\s*bye)?|farewell|ciao|good\s+night|see\s+ya|so\s+long(?!\s+as))\b"
        ),
        re.compile(
            rf"\b(?:see|talk\s+to|speak\s+(?:to|with)|talk\s+with|chat\s+with|catch)\s+you(?:\s+all)?\s+{_WHEN}"
        ),
        re.compile(r"\bsee\s+you(?:\s+all)?(?=\s*(?:[.!,;]|$))"),
        re.compile(r"\b(?:talk|speak|chat)\s+(?:soon|later)\b"),
        re.compile(rf"\b(?:until|till)\s+(?:next\s+[a-z]+|then|tomorrow|later|{_DAY})\b"),
        re.compile(r"\btake\s+care\b(?!\s+(?:of|to|that|with|not)\b)"),  # "take care to pause" is advice
        re.compile(
            r"\b(?:have|enjoy)\s+(?:a|the|your)\s+(?:(?:good|great|nice|lovely|wonderful|fantastic|relaxing)\s+)?"
            r"(?:rest\s+of\s+(?:the|your)\s+)?(?:day|one|evening|weekend|night|afternoon|morning|week|break|holiday)\b"
        ),
        re.compile(r"\bcheers\b(?=\s*(?:[.!]|$))"),
        re.compile(r"\b(?:g'?night|nite|night)\b(?=\s*(?:[.!,]|$))"),  # at a clause head only: not "last night."
    ),
    "leave": (
        re.compile(
            r"\b(?:(?:i|we)(?:'ve|\s+have)?\s+(?:got\s+to|gotta)|(?:i|we)\s+(?:have\s+to|need\s+to|must|should)"
            r"|(?:i|we)(?:'d|\s+had)\s+better|(?:i'm|i\s+am|we're|we\s+are)\s+going\s+to|gotta|got\s+to)"
            r"\s+(?:go|get\s+going|run|leave|dash|head\s+(?:off|out)|jump\s+off|hop\s+off|log\s+off|sign\s+off)"
            r"(?=\s*(?:[.!,;]|$|now\b|soon\b|sorry\b|thanks\b|for\s+now\b|in\s+a\s+\w+|to\s+(?:a|my|the|another)\s+"
            r"(?:meeting|call|class|appointment|lecture|lesson)))"
        ),
        re.compile(
            r"\b(?:(?:i'm|i\s+am|we're|we\s+are)\s+)?(?:heading\s+(?:off|out)|logging\s+off|signing\s+off"
            r"|going\s+to\s+(?:log|sign|head)\s+off)\b"
        ),
        # "I'm off to the meeting" leaves; "I'm off to a good start" and "I'm leaving the company" do not
        re.compile(
            r"\b(?:i'm|i\s+am|we're|we\s+are)\s+off\b(?!\s+(?:topic|track|work|the\s+hook|to\s+a\s+(?:\w+\s+)?start))"
        ),
        re.compile(r"\b(?:i'm|i\s+am|we're|we\s+are)\s+leaving(?=\s*(?:[.!,;]|$|now\b|soon\b|for\s+now\b))"),
        re.compile(r"\b(?:i'll|i\s+will|we'll|we\s+will|let\s+me)\s+(?:log|sign|head|hop|jump)\s+off\b"),
        re.compile(r"\b(?:i'll|i\s+will)\s+let\s+you\s+go\b"),
    ),
    "wrapup": (
        re.compile(
            r"\bthat(?:'s|\s+is|\s+was)\s+(?:all|it|everything)(?:\s+(?:i|we)\s+(?:have|had|need|needed|want|wanted)"
            r"(?:\s+to\s+(?:say|ask|cover|do))?)?(?:\s+(?:from\s+me|for\s+(?:today|now|tonight|this\s+session|the\s+day"
            r"|this\s+time|me|us)))?(?:\s+(?:today|for\s+today|for\s+now))?" + _END
        ),
        re.compile(
            r"\b(?:that|this|which)\s+(?:covers|wraps\s+up|wraps|concludes|ends|finishes)\s+(?:it|everything|things|us"
            r"|up|(?:our|the|today's)\s+(?:session|practice|lesson))(?:\s+(?:up|for\s+(?:today|now|this\s+session)))?"
            + _END
        ),
        re.compile(
            r"\b(?:let's|let\s+us|we'll|we\s+will|we\s+can|we\s+should|i'll|i\s+will)\s+(?:stop|end|finish|pause|close"
            r"|wrap\s+(?:it\s+|things\s+)?up|leave\s+it|call\s+it(?:\s+a\s+day)?)(?:\s+(?:here|there|now|today|for\s+today"
            r"|for\s+now|for\s+the\s+day|on\s+that\s+note))*" + _END
        ),
        re.compile(r"\b(?:call\s+it\s+a\s+day|that's\s+a\s+wrap)\b"),
        re.compile(r"\bthat(?:'s|\s+is)\s+(?:me|us)\s+(?:done|finished)(?:\s+for\s+(?:today|now))?" + _END),
        re.compile(
            r"\b(?:(?:that's|that\s+is|this\s+is|it's)\s+(?:a|probably\s+a)\s+)?(?:good|great|nice|natural)\s+(?:place|point|time|moment)\s+to\s+(?:stop|end|finish|pause|wrap\s+up)\b"
        ),
        # thanks that look back on the whole session, not on one tip: "thanks for all your help today"
        re.compile(
            r"\bthank(?:s|\s+you)(?:\s+(?:so|very)\s+much|\s+a\s+lot|\s+again)?\s+for\s+(?:everything|today|(?:all\s+(?:of\s+)?)"
            r"(?:your|the)\s+[a-z]+(?:\s+today)?|(?:your|the)\s+(?:[a-z]+\s+)?(?:session|lesson|time)\b(?:\s+today)?"
            r"|(?:your|the)\s+[a-z]+\s+today)"
        ),
        re.compile(
            r"\bthat(?:'s|\s+is)\s+(?:(?:all\s+of\s+)?(?:our|my|your)\s+time|enough(?:\s+[a-z]+)?\s+for\s+(?:today|now|one\s+day))"
            r"(?:\s+for\s+(?:today|now))?" + _END
        ),
        re.compile(
            r"\b(?:i'm|i\s+am|we're|we\s+are)\s+(?:all\s+)?(?:done|finished|through)(?:\s+(?:here|today|for\s+(?:today"
            r"|now|the\s+day|tonight)))*" + _END
        ),
    ),
    "resume": (
        re.compile(
            r"\b(?:let's|let\s+us|we'll|we\s+will|we\s+can|i'll|i\s+will)\s+(?:pick\s+(?:this|it|things|that)\s+up"
            r"|pick\s+up|continue|carry\s+on|resume|come\s+back\s+to\s+(?:this|it|that))\b[^.!?]{0,40}?" + LATER.pattern
        ),
        re.compile(r"\bcome\s+back\s+(?:and|to)\s+(?:tell|let)\s+me\b"),
        # the speaker will return later: "I'll come back after the interview" (not "come back to that point")
        re.compile(
            r"\b(?:i'll|i\s+will|i'm\s+going\s+to)\s+(?:come\s+back|report\s+back|check\s+back\s+in)\b(?!\s+to\b)"
        ),
        re.compile(r"\blet\s+me\s+know\s+how\s+(?:it|that|they|things|the\s+\w+)\s+(?:goes|go|turns?\s+out)\b"),
    ),
    "wish": (
        re.compile(
            r"\b(?:good\s+luck|best\s+of\s+luck|best\s+wishes|all\s+the\s+best|fingers\s+crossed|break\s+a\s+leg"
            r"|go\s+get\s+(?:them|'em|it)|knock\s+(?:them|'em)\s+dead"
            r"|(?:i\s+|we\s+)?wish(?:ing)?\s+you\s+(?:(?:the\s+)?(?:best\s+(?:of\s+)?)?luck|the\s+best|all\s+the\s+best"
            r"|well|success))\b"
        ),
        # "Enjoy the conference!": wishing a good time for what comes after the session
        re.compile(r"\benjoy\s+(?:the|your)\s+(?:[a-z']+\s+){0,4}?[a-z']+(?=\s*(?:[.!]|$))"),
    ),
}

EXPLICIT_KINDS = frozenset({"farewell", "leave"})

SPOKEN_FORMS = {
    "im": "i'm",
    "ive": "i've",
    "thats": "that's",
    "dont": "don't",
    "youre": "you're",
    "gonna": "going to",
    "wanna": "want to",
    "lets": "let's",
    "cant": "can't",
    "whats": "what's",
}

GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|hiya|howdy|welcome(?:\s+back)?|good\s+(?:morning|afternoon|evening)"
    r"|(?:it's\s+)?(?:nice|great|good|lovely)\s+to\s+(?:see|meet|have)\s+you)\b"
)

# Words that may stand between the start of a clause and a phrase the speaker is performing
# ("Okay, thanks so much, bye", "I think that covers it", "I just wanted to say goodbye"). Anything else
# there (a subject with a verb such as "said", a determiner, a preposition) makes the phrase a mention.
CLAUSE_HEAD_WORDS = frozenset(
    """
    and but so okay ok alright all right well anyway anyways oh ah then now again thanks thank you much very
    really great perfect cool good lovely nice awesome brilliant excellent fantastic wonderful super i we just
    think guess believe suppose hope want wanted to say like i'd we'd i'll we'll will let me wish everyone guys
    folks sorry
    yeah yes sure hmm um uh also
    """.split()
)
COORDINATORS = frozenset({"and", "but", "then", "so"})
# A farewell that is the object of one of these is being reported, not performed ("I said thanks and goodbye").
REPORTING_VERBS = frozenset(
    """
    say says said saying tell tells told telling wish wishes wished wave waves waved waving bid bade kiss kissed
    text texted write wrote written type typed shout shouted yell yelled whisper whispered reply replied answer
    answered add added hear heard use used using end ended ending sign signed
    """.split()
)
# A farewell followed by one of these is the subject of a sentence about it ("Good luck is not a strategy").
SUBJECT_FOLLOWERS = frozenset(
    """
    is was are were isn't wasn't aren't weren't sounds sounded seems seemed feels felt means meant won't doesn't
    didn't works worked helps helped can't gets makes made comes came has had
    """.split()
)
# ... or the modifier of a noun ("our goodbye lunch", "a good luck charm").
NOUN_FOLLOWERS = frozenset(
    """
    lunch party email emails card message messages speech gift note notes drinks letter dinner hug kiss present
    video post line lines phrase phrases word words scene wave charm
    """.split()
)

INTERROGATIVE_START = re.compile(
    r"^(?:(?:what|how|why|when|where|which|who)\b|(?:can|could|would|will|should|shall|do|does|did|is|are|was"
    r"|were|may|might)\s+(?:i|we|you|it|they|he|she|that|this|there)\b)"
)

# After the last closing phrase, any of these means the turn goes on (a question, a task, a new topic).
CONTINUATION = (
    re.compile(r"\?"),
    re.compile(
        r"(?:^|[,;:.!]\s*|\b(?:and|so|now|then|first|next)\s+)(?:try|say|repeat|read|practi[cs]e|rehearse|record"
        r"|give\s+me|tell\s+me|show\s+me|walk\s+me|go\s+ahead|start|begin|answer|describe|explain|pitch"
        r"|run\s+through)\b"
    ),
    re.compile(r"\b(?:one\s+more\s+(?:time|round|try|go|exercise|question|thing)|once\s+more)\b"),
    re.compile(r"\b(?:try|do|say)\s+(?:it|that|this)\s+again\b"),
    re.compile(r"\bbefore\s+(?:we|you|i)\b"),
    re.compile(r"\b(?:now|next)\s*,?\s+(?:i|we|let's|you)\b"),
    re.compile(r"\bthe\s+next\s+(?:slide|point|section|topic|part|question|step|one|item)\b"),
    re.compile(r"\b(?:what|how)\s+about\b"),
    re.compile(r"\bthen\s+(?:i|we|he|she|they)\s+\w+ed\b"),
)
# "Let's <verb>" continues the session unless it is a parting phrase or the verb is put off till later.
OPEN_LET_US = re.compile(
    r"\b(?:let's|let\s+us)\s+(?!(?:pick|continue|carry|resume|stop|end|finish|wrap|call|leave|catch|talk|chat"
    r"|speak)\b)[a-z]+"
)
