"""What moderators read: case cards, the queue, relayed messages and answers to their commands.

Young people's words are shown as plain text (no parse mode anywhere), so nothing they write can
format, link or hide itself in a moderator's chat. Moderators never see a young person's Telegram name,
username or id: only the case number and a short tag of the person for that case
(`pseudonym.case_tag`). Young people's text lives in domain.yml; this file is the moderators' side.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.cases import CaseView
from bot.channel import Say
from bot.escalation import (
    UK_TIME,
    CaseState,
    HolderGone,
    Move,
    NoTarget,
    Sender,
    TargetError,
    case_button,
    waited,
)
from bot.models import UserBlock
from bot.pseudonym import case_tag

RECENT_LINES = 5
INTRO_LINES = 20
LINE_CHARS = 300

REASONS = {
    "risk_immediate": "danger now",
    "disclose_sextortion": "sextortion",
    "disclose_image_shared": "nude image shared",
    "disclose_grooming": "grooming",
    "disclose_cyberbullying": "cyberbullying",
    "disclose_harassment": "harassment or stalking",
    "disclose_other_harm": "other harm online",
    "request_human": "asked for a person",
    "assistant_unavailable": "asked for a person while the assistant was down",
    "flooding": "keeps sending messages very fast (flood control); look, then talk or /block",
}

MEDIA_NAMES = {
    "photo": "a photo",
    "video": "a video",
    "voice": "a voice message",
    "video_note": "a video message",
    "document": "a file",
    "sticker": "a sticker",
    "animation": "a GIF",
    "audio": "an audio file",
    "location": "their location",
    "venue": "a place",
    "contact": "a phone contact",
}


def _clock(at: dt.datetime) -> str:
    return at.astimezone(UK_TIME).strftime("%H:%M")


def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def reason_label(reason: str) -> str:
    """Return the reason in moderators' words, with Rasa's name for it."""
    return f"{REASONS.get(reason, reason.replace('_', ' '))} ({reason})"


SHOWN_AS = {Sender.USER: "›", Sender.MODERATOR: "‹ you:", Sender.NOTE: "✎ note:", Sender.SYSTEM: "·"}


def _transcript(lines: Sequence[tuple[Sender, str]]) -> list[str]:
    return [f"{SHOWN_AS.get(sender, '·')} {_line(body)}" for sender, body in lines]


def case_card(case: CaseView, lines: Sequence[tuple[Sender, str]], now: dt.datetime) -> Say:
    """Return the card moderators see in their group for a case, with the buttons its state allows."""
    head = [
        f"Case #{case.number} · {case.priority.value.upper()}",
        f"Reason: {reason_label(case.reason)}",
        f"Person: {case_tag(case.user_ref, case.number)} (pseudonymous, this case only)",
    ]
    buttons: tuple[tuple[str, str], ...]
    if case.state is CaseState.QUEUED:
        head.append(f"Waiting since {_clock(case.opened_at)} ({waited(case.opened_at, now)})")
        buttons = (
            ("Claim", case_button(Move.CLAIM, case.number)),
            ("Close", case_button(Move.CLOSE, case.number)),
        )
    elif case.state is CaseState.CLAIMED and case.claimed_at is not None:
        head.append(f"Claimed by {case.claimed_by_name or 'a moderator'} at {_clock(case.claimed_at)}")
        buttons = (
            ("Take over", case_button(Move.TAKEOVER, case.number)),
            ("Close", case_button(Move.CLOSE, case.number)),
        )
    else:
        closed = _clock(case.closed_at) if case.closed_at else "?"
        head.append(f"Closed at {closed}")
        buttons = ()
    if case.state is CaseState.CLOSED:  # a closed case's card keeps no one's words in the group
        return Say("\n".join(head), buttons)
    recent = [sender_line for sender_line in lines if sender_line[0] in {Sender.USER, Sender.SYSTEM}][
        -RECENT_LINES:
    ]
    body = ["Last messages:", *_transcript(recent)] if recent else ["(nothing written yet)"]
    return Say("\n".join([*head, *body]), buttons)


def urgent_alert(case: CaseView, now: dt.datetime) -> Say:
    """Return the private alert each moderator gets about an urgent case whose card the group can't take
    yet (Telegram's limit): no one's words, only how to take it."""
    return Say(
        "\n".join(
            [
                f"URGENT case #{case.number} ({reason_label(case.reason)}) is waiting since "
                f"{_clock(case.opened_at)} ({waited(case.opened_at, now)}).",
                "The moderators' group is at Telegram's limit, so its card is late. "
                f"Take it here: /claim {case.number}",
            ]
        ),
        (("Claim", case_button(Move.CLAIM, case.number)),),
    )


def superseded_card(case: CaseView) -> Say:
    """Return what an old card says once a newer card for the same case was posted."""
    where = "waiting for a moderator" if case.state is CaseState.QUEUED else case.state.value
    return Say(
        f"Case #{case.number} is now {case.priority.value.upper()}, {where}: see the newer card below."
    )


def claimed_intro(case: CaseView, lines: Sequence[tuple[Sender, str]]) -> Say:
    """Return the first message a moderator gets in their private chat after claiming."""
    shown = _transcript(lines[-INTRO_LINES:]) or ["(nothing written yet)"]
    return Say(
        "\n".join(
            [
                f"You hold case #{case.number} ({case.priority.value}, {reason_label(case.reason)}).",
                "Write here and it reaches the young person as \u201cSignpost team\u201d. "
                "Reply to a case's message to pick the case if you hold several.",
                "/note <text> adds a private note · /close ends the case · /release gives it back to the "
                "queue · /queue lists open cases.",
                "So far:",
                *shown,
            ]
        )
    )


# A relayed line starts with its case number, then an angle quote (U+203A) for the young person's own
# words, or a middle dot and "from the bot:" for a notice of ours (a deleted photo, a button pressed,
# quick exit): a person can never make their words look like the bot's, theirs always follow the quote.
FROM_USER = re.compile(r"#(\d{1,9}) [›·] ")
FROM_BOT = "from the bot:"


def from_user(number: int, text: str) -> Say:
    """Return a young person's message as it appears in the moderator's private chat."""
    return Say(f"#{number} › {text}")


def relayed(number: int, sender: Sender, text: str) -> Say:
    """Return a line of a claimed case for its moderator: the person's words, or marked as a bot notice."""
    if sender is Sender.USER:
        return from_user(number, text)
    return Say(f"#{number} · {FROM_BOT} {text}")


def case_of_line(text: str) -> int | None:
    """Return the case number a line made by from_user or relayed starts with, or None."""
    found = FROM_USER.match(text)
    return int(found.group(1)) if found else None


def media_notice(kind: str, deleted: bool) -> str:
    """Return what a moderator sees instead of media a young person sent."""
    what = MEDIA_NAMES.get(kind, "something that wasn't text")
    done = "deleted, not viewed" if deleted else "not viewed; the bot could not delete it"
    return f"[the user sent {what} — {done}]"


def unsupported_notice(kind: str) -> str:
    """Return what a moderator sees when a young person sent something the bot can't relay."""
    return f"[the user sent {MEDIA_NAMES.get(kind, 'a ' + kind.replace('_', ' '))}, which can't be relayed]"


def pressed_notice(title: str) -> str:
    """Return what a moderator sees when the young person pressed one of the bot's buttons."""
    return f"[pressed the button \u201c{title}\u201d]"


def edited_notice(text: str) -> str:
    """Return a young person's edited message as its moderator sees it."""
    return f"[edited] {text}"


QUICK_EXIT_NOTICE = "[the user pressed quick exit: their chat was cleared; they may not be able to talk now]"


def forgotten(number: int) -> Say:
    """Return what moderators see when a case's person asked Signpost to forget them."""
    return Say(
        f"Case #{number} is gone: the young person asked Signpost to forget them, so the case and its "
        "transcript were deleted. Anything you must keep for safeguarding belongs in your own records."
    )


@dataclass(frozen=True)
class BlockView:
    """A block as moderators see it: its number, the case it came from, until when, by whom."""

    number: int
    case_number: int | None
    until: dt.datetime
    blocked_by: int

    @classmethod
    def of(cls, row: UserBlock) -> BlockView:
        """Return the view of a block row (never its pseudonym)."""
        return cls(row.id, row.case_number, row.until, row.blocked_by)


def _day(at: dt.datetime) -> str:
    return at.astimezone(UK_TIME).strftime("%d %b %Y")


def blocked(case_number: int, block_number: int, until: dt.datetime) -> str:
    """Return the answer to /block."""
    return (
        f"Block #{block_number}: the person of case #{case_number} can't reach the bot or moderators until "
        f"{_day(until)} (they still get the crisis numbers). The case is closed. /unblock {block_number} "
        "lifts it."
    )


def blocks_text(blocks: Sequence[BlockView]) -> str:
    """Return the blocks in force for /blocks."""
    if not blocks:
        return "No blocks in force."
    lines = ["Blocks in force:"]
    for b in blocks:
        case = f"case #{b.case_number}" if b.case_number is not None else "no case"
        lines.append(f"#{b.number} · {case} · until {_day(b.until)} · by moderator {b.blocked_by}")
    return "\n".join(lines)


def queue_text(cases: Sequence[CaseView], now: dt.datetime) -> str:
    """Return the open cases for /queue, most urgent and longest waiting first."""
    if not cases:
        return "No open cases."
    lines = ["Open cases (most urgent, then longest waiting, first):"]
    for case in cases:
        state = (
            f"waiting {waited(case.opened_at, now)}"
            if case.state is CaseState.QUEUED
            else f"claimed by {case.claimed_by_name or 'a moderator'}"
        )
        lines.append(
            f"#{case.number} · {case.priority.value.upper()} · {reason_label(case.reason)} · {state}"
        )
    return "\n".join(lines)


def idle_reminder(idle: Sequence[tuple[CaseView, dt.datetime]], now: dt.datetime) -> Say:
    """Return one reminder for every claimed case whose young person is waiting for an answer."""
    lines = [f"No answer yet in a claimed case ({len(idle)}):"]
    lines += [
        f"#{c.number} · {c.priority.value.upper()} · {reason_label(c.reason)} · held by "
        f"{c.claimed_by_name or 'a moderator'} · waiting {waited(since, now)} · /takeover {c.number}"
        for c, since in idle
    ]
    return Say("\n".join(lines))


HOLDER_GONE = {
    HolderGone.NOT_A_MODERATOR: "the moderator holding it isn't on the moderators' list any more",
    HolderGone.UNREACHABLE: "the moderator holding it can't be reached (they may have blocked the bot)",
}


def requeued(number: int, why: HolderGone) -> Say:
    """Return the group's notice that the adapter gave a claimed case back to the queue."""
    return Say(f"Case #{number} is back in the queue: {HOLDER_GONE[why]}. Its new card follows.")


def released(number: int) -> str:
    """Return the answer to /release."""
    return f"Case #{number} is back in the queue; a new card is in the group. You no longer hold it."


def taken_over(number: int, previous: str | None) -> str:
    """Return the answer to a takeover."""
    return (
        f"Case #{number} is yours now (taken over from {previous or 'another moderator'}). "
        "Carry on in your private chat with the bot."
    )


def taken_from(number: int, by: str) -> Say:
    """Return what the moderator who held a case reads when another takes it over."""
    return Say(
        f"Case #{number} was taken over by {by}. You no longer hold it: nothing you write here reaches "
        "its young person now."
    )


def already_yours(number: int) -> str:
    """Return the answer to taking over a case one holds already."""
    return f"You already hold case #{number}."


def not_held(number: int, state: CaseState) -> str:
    """Return why a case that isn't claimed can't be taken over."""
    if state is CaseState.CLOSED:
        return f"Case #{number} isn't held by anyone: it is closed."
    return f"Case #{number} isn't held by anyone: /claim {number} takes it."


def claimed(number: int) -> str:
    """Return the answer to a claim."""
    return f"Case #{number} is yours. Carry on in your private chat with the bot."


def closed(number: int) -> str:
    """Return the answer to a close."""
    return f"Case #{number} is closed."


def no_case(number: int) -> str:
    """Return the answer about a case number that doesn't exist (any more)."""
    return f"There is no case #{number}."


def cannot_move(number: int, move: Move) -> str:
    """Return why a move the case's state doesn't allow (now) was not made."""
    if move is Move.RELEASE:
        return not_yours(number, move.value, None)
    if move is Move.TAKEOVER:
        return f"Case #{number} changed meanwhile. Nothing changed; /queue shows it now."
    return f"Case #{number} is already {'claimed or closed' if move is Move.CLAIM else 'closed'}."


def noted(number: int) -> str:
    """Return the answer to /note."""
    return f"Note added to case #{number}. The young person doesn't see notes."


def no_block(block_id: int) -> str:
    """Return the answer to /unblock for a block that isn't in force."""
    return f"There is no block #{block_id} in force."


def unblocked(block_id: int) -> str:
    """Return the answer to /unblock."""
    return f"Block #{block_id} is lifted."


def not_yours(number: int, what: str, holder: str | None) -> str:
    """Return why a moderator can't release, close or block a case another moderator holds."""
    if what == Move.RELEASE.value:
        return f"You don't hold case #{number}, so you can't release it. Nothing changed."
    return (
        f"Case #{number} is held by {holder or 'another moderator'}: only they can {what} it. "
        f"/takeover {number} first if you must. Nothing changed."
    )


def reminder(cases: Sequence[CaseView], now: dt.datetime) -> Say:
    """Return one reminder for every case still waiting (one message, not one per case)."""
    lines = [f"Still waiting for a moderator ({len(cases)}):"]
    lines += [
        f"#{c.number} · {c.priority.value.upper()} · {reason_label(c.reason)} · {waited(c.opened_at, now)}"
        for c in cases
    ]
    return Say("\n".join(lines))


def unsaved_card(priority: str, reason: str, recent: Sequence[str], now: dt.datetime) -> Say:
    """Return the card sent when the database is down: the request still reaches moderators."""
    lines = [
        f"Handover request · {priority.upper()} · NOT SAVED (the database is not answering)",
        f"Reason: {reason_label(reason)}",
        f"Asked at {_clock(now)}. The young person was told a person was asked for; "
        "their messages keep going to the bot until the case can be saved.",
        "This card will be followed by a normal one when the database is back.",
    ]
    if recent:
        lines += ["Last messages:", *(f"› {_line(t)}" for t in recent[-RECENT_LINES:])]
    return Say("\n".join(lines))


def abandoned(number: int, days: int) -> Say:
    """Return what a case's card says once the case was closed and deleted, untouched for `days` days."""
    return Say(
        f"Case #{number} was closed and deleted: nobody wrote in it or moved it for {days} days "
        "(the retention time), so its transcript is gone too."
    )


def unsaved_saved(number: int) -> Say:
    """Return what a NOT SAVED card says once its case is saved (its words are on the case's card)."""
    return Say(f"Handover request saved as case #{number}: see its card below.")


def unsaved_forgotten() -> Say:
    """Return what a NOT SAVED card says once its person asked Signpost to forget them."""
    return Say(
        "Handover request withdrawn: the young person asked Signpost to forget them, so it was never saved "
        "and its messages were removed. Anything you must keep for safeguarding belongs in your own records."
    )


# Answers to moderators (callback alerts and private-chat replies).
NOT_A_MODERATOR = "Only Signpost moderators can do this."
EXPIRED = "This button has expired."
DATABASE_DOWN = "The database isn't answering, so nothing changed. Try again in a minute."
START_PRIVATE_CHAT = (
    "I can't write to you in private yet. Open a private chat with the bot, press Start, then claim again."
)
TEXT_ONLY = "Only text reaches the young person. Nothing was sent."
USER_GONE = "The young person can't be reached (they may have blocked the bot). You can /close the case."
SAY_WHICH_CASE = "Say which case, e.g. /{command} 12. /queue lists open cases."
NOTE_HOW = "Write the note after /note, e.g. /note said school is aware."
UNBLOCK_HOW = "Say which block, e.g. /unblock 3. /blocks lists them."
COMMANDS_HELP = (
    "Commands: /queue (open cases) · /claim <number> · /note <text> · /close [number] · "
    "/release [number] · /takeover <number> · /block [number] · /blocks · /unblock <block>. "
    "Anything else you write here goes to the young person of your case."
)
EDITS_NOT_PASSED_ON = "Edits aren't passed on: the young person has the first version. Send a new message."
MODERATOR_ERROR = (
    "Something went wrong on the bot's side; that may not have worked. Check /queue and try again."
)


def no_target(error: TargetError) -> str:
    """Return why a moderator's message reached no case (and that nothing was sent)."""
    if error.why is NoTarget.NOT_A_CASE:
        return "That message isn't from a case. Nothing was sent."
    if error.why is NoTarget.NOT_HELD:
        return "That message belongs to a case you don't hold now. Nothing was sent."
    if error.why is NoTarget.NONE_HELD:
        return "You don't hold a case. /queue lists open cases. Nothing was sent."
    numbers = ", ".join(f"#{n}" for n in error.held)
    return (
        f"You hold {len(error.held)} cases ({numbers}). Reply to a message from the case you mean. "
        "Nothing was sent."
    )
