"""Reading what a young person's message says about who was hurt and how old they are.

The answers themselves are responses in domain.yml whose variations depend on the slots filled here
(`about_someone_else`, `age_group`, `disclosure`): see actions/slots.py.
"""

from __future__ import annotations

import re

DISCLOSURE_PREFIX = "disclose_"
RISK_INTENT = "risk_immediate"
AGE_GROUPS = ("under_13", "13_17", "18_plus")

_SOMEONE_ELSE = re.compile(
    r"\b(?:my|our|a)\s+(?:best\s+)?(?:friend|mate|bestie|bff|bezzie|sister|brother|sis|bro|cousin|"
    r"classmate|girlfriend|boyfriend|gf|bf)s?\b|\b(?:she|he|they)\s+(?:is|are|'s|'re|s)\s+being\b",
    re.IGNORECASE,
)
_ABOUT_ME = re.compile(
    r"\b(?:me|myself|i|i'm|im|i've|ive|i'd|id)\b|\bmy\s+(?:nudes?|pics?|pictures?|photos?|images?|"
    r"videos?|vids?|account|snap|insta|number|address|body)\b",
    re.IGNORECASE,
)
_WORDS_TO_NUMBERS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
}
_AGE_NUMBER = re.compile(r"\b(\d{1,2})\b")
_SCHOOL_YEAR = re.compile(r"\b(?:year|yr|y)\s*(\d{1,2})\b", re.IGNORECASE)
_UNDER_13 = re.compile(r"\bunder\s*(?:13|thirteen)\b|\bprimary\b", re.IGNORECASE)
_ADULT = re.compile(r"\b(?:adult|over\s*(?:18|eighteen)|18\s*\+|grown\s*up)\b", re.IGNORECASE)


def is_about_someone_else(text: str) -> bool:
    """Return True when the message tells of harm to a friend or relative rather than the writer."""
    return bool(_SOMEONE_ELSE.search(text)) and not _ABOUT_ME.search(text)


def age_group_for(age: int) -> str:
    """Return the age group for an age in years."""
    if age < 13:
        return "under_13"
    if age < 18:
        return "13_17"
    return "18_plus"


def age_group_from_text(text: str) -> str | None:
    """Return the age group a message states ("im 14", "year 9", "i'm an adult"), or None."""
    if _UNDER_13.search(text):
        return "under_13"
    if _ADULT.search(text):
        return "18_plus"
    school_year = _SCHOOL_YEAR.search(text)
    if school_year:
        # In England pupils in year N turn N + 5 during the school year (year 7: 11 to 12); a
        # sixth-former in year 13 is still treated as under 18.
        year = int(school_year.group(1))
        return age_group_for(min(year + 5, 17)) if 1 <= year <= 13 else None
    lowered = text.lower()
    for word, age in _WORDS_TO_NUMBERS.items():
        if re.search(rf"\b{word}\b", lowered):
            return age_group_for(age)
    digits = _AGE_NUMBER.search(text)
    if digits and 5 <= int(digits.group(1)) <= 99:
        return age_group_for(int(digits.group(1)))
    return None


def disclosure_from_intent(intent: str | None) -> str | None:
    """Return the harm a message discloses (a disclose_* intent or risk_immediate), or None."""
    if intent and (intent.startswith(DISCLOSURE_PREFIX) or intent == RISK_INTENT):
        return intent
    return None
