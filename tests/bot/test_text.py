"""What a person typed, cleaned before it reaches Rasa or a moderator: spaces kept, tricks dropped."""

from __future__ import annotations

import pytest

from bot.text import MAX_TEXT_CHARS, clean_text

ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"


@pytest.mark.parametrize(
    ("typed", "cleaned"),
    [
        # Unicode spaces are spaces: the risk words stay two words.
        ("kill\u00a0myself", "kill myself"),  # no-break space (phones put it after some punctuation)
        ("kill\u202fmyself", "kill myself"),  # narrow no-break space
        ("kill\u2009myself", "kill myself"),  # thin space
        ("kill\u2002myself", "kill myself"),  # en space
        ("kill\u3000myself", "kill myself"),  # ideographic space
        ("kill\u1680myself", "kill myself"),  # ogham space mark (category Zs too)
        ("kill\tmyself", "kill myself"),
        ("kill\x0bmyself", "kill myself"),  # vertical tab
        ("kill\x0cmyself", "kill myself"),  # form feed
        # A zero-width space marks where a line may break, i.e. between words: read it as one.
        ("kill\u200bmyself", "kill myself"),
        ("kill \u200b myself", "kill myself"),  # runs of spaces become one
        # Invisible joins inside a word leave the word whole.
        ("sui\u00adcide", "suicide"),  # soft hyphen
        ("kill\u2060myself", "killmyself"),  # word joiner: shown (and meant) as one word
        ("\ufeffhelp me", "help me"),  # byte-order mark at the start of pasted text
        # Lines stay lines, however they were ended.
        ("help\nme", "help\nme"),
        ("help\r\nme", "help\nme"),
        ("help\rme", "help\nme"),
        ("help\u2028me", "help\nme"),  # line separator
        ("help\u2029me", "help\nme"),  # paragraph separator
        ("help\x85me", "help\nme"),  # next line (C1)
        # Control characters and bidi overrides/isolates go: they hide or reorder what a person sees.
        ("help\x00me", "helpme"),
        ("help\x1bme", "helpme"),
        ("help\x7fme", "helpme"),
        ("help\x9bme", "helpme"),  # C1 control
        ("\u202ekill myself\u202c", "kill myself"),  # right-to-left override ... pop
        ("\u202akill\u202b \u202dmyself", "kill myself"),  # embeddings and left-to-right override
        ("\u2066kill\u2067 \u2068myself\u2069", "kill myself"),  # isolates
        # What people write otherwise arrives as written.
        ("  I'm scared  ", "I'm scared"),
        ("he said “send pics” 😢", "he said “send pics” 😢"),
        ("👩\u200d👧 my family", "👩\u200d👧 my family"),  # zero-width joiner inside an emoji sequence
        (ENGLAND, ENGLAND),  # a flag spelt with tag characters
        ("می\u200cخواهم", "می\u200cخواهم"),  # zero-width non-joiner, part of Persian spelling
        ("\U0001fae0", "\U0001fae0"),  # an emoji newer than this Python's Unicode tables
        ("", ""),
        ("\u200b\u00a0\t", ""),
    ],
)
def test_clean_text_keeps_words_apart_and_drops_control_characters(typed: str, cleaned: str) -> None:
    assert clean_text(typed) == cleaned


def test_clean_text_cuts_to_telegrams_message_size() -> None:
    assert clean_text("a" * 5000) == "a" * MAX_TEXT_CHARS
    assert clean_text("help\u00a0" * 5000).startswith("help help")
