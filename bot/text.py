"""What a person typed, made safe to pass on without changing what they said.

Spaces of every kind become a plain space, so "kill\\u00a0myself" still reads as two words to the NLU
and to a moderator. Only what hides or reorders text goes: control characters and the bidi overrides and
isolates (the "Trojan Source" characters). Joiners that emoji and several scripts are spelt with stay.
"""

from __future__ import annotations

import re
import unicodedata

# Telegram's limit for one message; longer text is cut.
MAX_TEXT_CHARS = 4096

NEWLINES = {"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n"}
# A zero-width space marks where a line may break, that is between words: read it as a space.
SPACES = {"\t": " ", "\x0b": " ", "\x0c": " ", "\u200b": " "}
# Bidi embeddings, overrides (U+202A-U+202E) and isolates (U+2066-U+2069) reorder what is shown; and three
# invisible characters that join a word rather than split it: soft hyphen, word joiner, byte-order mark.
DROPPED = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\u00ad", "\u2060", "\ufeff"}
RUNS_OF_SPACES = re.compile(" {2,}")


def _clean_char(ch: str) -> str:
    """Return what one character becomes: itself, a space, a newline, or nothing."""
    if ch == "\n":
        return ch
    if ch in NEWLINES:
        return NEWLINES[ch]
    if ch in SPACES:
        return SPACES[ch]
    if ch in DROPPED:
        return ""
    category = unicodedata.category(ch)
    if category == "Zs":
        return " "
    if category in {"Cc", "Cs"}:  # control characters, and halves of a broken surrogate pair
        return ""
    return ch


def clean_text(text: str) -> str:
    """Return what a person typed with every space a plain space and no hidden controls, cut to size."""
    text = text.replace("\r\n", "\n")
    kept = RUNS_OF_SPACES.sub(" ", "".join(_clean_char(ch) for ch in text))
    return kept.strip()[:MAX_TEXT_CHARS]
