"""The web chat end to end: the real Rasa server, action server and adapter (`python -m bot`: Telegram
against the fake Bot API and the web chat on its own port), used over HTTP and from a real browser
(Playwright driving Chromium, with axe-core's accessibility check on every screen).

The browser tests run wherever a Chromium is found (`.ci/run` installs Debian's); without one they skip
and say so, and `make test` says so loudly in its summary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.stack import free_port, running_adapter
from tests.conftest import NO_BROWSER
from tests.e2e.conftest import Assistant
from tests.e2e.fake_telegram import FakeTelegram
from tests.e2e.test_telegram import GROUP, MODERATOR, adapter_env

pytestmark = pytest.mark.e2e

CRISIS = ("999", "0800 1111", "85258", "116 123")


def chromium() -> str | None:
    """Return a Chromium for Playwright: PLAYWRIGHT_CHROMIUM, Debian's, or None (Playwright's own)."""
    for candidate in (os.environ.get("PLAYWRIGHT_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class Web:
    """The adapter serving the web chat (and Telegram, on the fake Bot API), and where Exit goes."""

    fake: FakeTelegram
    url: str
    exit_url: str


class _Weather(BaseHTTPRequestHandler):
    """An ordinary page to leave to (EXIT_URL), on this machine."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>Weather</title><h1>Weather</h1>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def weather() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Weather)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/weather"
    server.shutdown()


@pytest.fixture(scope="module")
def web(assistant: Assistant, weather: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    with FakeTelegram() as fake, ExitStack() as stack:
        fake.add_group(GROUP, "Signpost moderators")
        fake.start_private_chat(MODERATOR)
        port = free_port()
        env = {**adapter_env(fake, assistant), "WEB_PORT": str(port), "EXIT_URL": weather}
        stack.enter_context(running_adapter(tmp_path_factory.mktemp("web"), env, name="web-adapter"))
        fake.wait_for_call("getUpdates", timeout=60)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Web(fake, url, weather)


class Page:
    """A browser without the page's script, over HTTP: the cookie, the form token, the live feed."""

    def __init__(self, web: Web) -> None:
        self.client = httpx.Client(base_url=web.url, timeout=30)
        page = self.client.get("/")
        self.token = re.search(r'name="token" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]

    def send(self, text: str) -> None:
        answer = self.client.post(
            "/send", data={"token": self.token, "message": text}, headers={"x-requested-with": "signpost"}
        )
        assert answer.status_code == 202, answer.text

    def feed_until(self, wanted: str, seconds: float = 60) -> list[dict[str, Any]]:
        """Read the live feed (server-sent events) from the start until a line contains `wanted`."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        with self.client.stream("GET", "/events", params={"after": 0}, timeout=seconds) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["x-accel-buffering"] == "no"  # nginx passes each event on at once
            for raw in stream.iter_lines():  # a heartbeat at least every 15 s
                if time.monotonic() > deadline:
                    break
                if raw.startswith("data: "):
                    events.append(json.loads(raw.removeprefix("data: ")))
                    if wanted in events[-1].get("text", ""):
                        return events
        raise AssertionError(f"{wanted!r} never came down the feed: {events}")


def test_a_disclosure_over_the_web_gets_advice_down_the_live_feed(web: Web) -> None:
    page = Page(web)
    page.send("a guy on insta says he will send my nudes to everyone unless i pay him")
    events = page.feed_until("Don't pay")
    assert events[0]["mine"] and "unless i pay him" in events[0]["text"]
    assert any("not your fault" in e.get("text", "") for e in events)


def test_long_polling_carries_the_same_conversation(web: Web) -> None:
    page = Page(web)
    page.send("hello")
    seen: list[dict[str, Any]] = []
    after = 0
    deadline = time.monotonic() + 60
    while not any("0800 1111" in e.get("text", "") for e in seen):
        assert time.monotonic() < deadline, seen
        events = page.client.get("/poll", params={"after": after}).json()["events"]
        seen += events
        after = max([after, *(e["id"] for e in events if e.get("type") == "line")])
    assert seen[0]["text"] == "hello"


def test_a_web_person_and_a_telegram_moderator_talk_both_ways(web: Web) -> None:
    page = Page(web)
    seen = len(web.fake.messages(GROUP))
    page.send("can i talk to a real person please")
    page.feed_until("stays private")
    card = web.fake.wait_for_message(GROUP, lambda m: m["text"].startswith("Case #"), after=seen)
    number = int(card["text"].split("#", 1)[1].split(" ", 1)[0])
    mine = len(web.fake.messages(MODERATOR))
    web.fake.user_presses(MODERATOR, card, f"case:claim:{number}")
    web.fake.wait_for_message(MODERATOR, lambda m: f"You hold case #{number}" in m["text"], after=mine)
    page.feed_until("has joined")  # the person sees that a person took over
    page.send("thank you, is anyone there")
    relayed = web.fake.wait_for_message(MODERATOR, lambda m: "is anyone there" in m["text"], after=mine)
    # A reply to the relayed line, as a moderator holding several cases answers (the test database is the
    # other end-to-end modules' too, and this moderator may hold their cases).
    web.fake.user_sends_text(
        MODERATOR, "Hi, I'm here now. Take your time.", reply_to_message_id=relayed["message_id"]
    )
    page.feed_until("Take your time")


# ---------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    with playwright_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable)
        except Exception as exc:  # no Chromium here: say so (make test's summary repeats it)
            pytest.skip(
                f"{NO_BROWSER}: no Chromium for Playwright ({type(exc).__name__}); install Debian's chromium"
            )
        yield launched
        launched.close()


def open_chat(browser: Any, web: Web, **options: Any) -> Any:
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(web.url + "/")
    return page


def no_serious_accessibility_problems(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa", "wcag22aa"]}}
    )
    serious = [v for v in results.response["violations"] if v["impact"] in {"serious", "critical"}]
    assert serious == [], [(v["id"], v["help"]) for v in serious]


def conversation(page: Any) -> Any:
    return page.get_by_role("log")


def send(page: Any, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()


def test_in_the_browser_danger_gets_the_crisis_numbers_at_once_and_the_page_is_accessible(
    browser, web
) -> None:
    page = open_chat(browser, web)
    no_serious_accessibility_problems(page)
    send(page, "i want to kill myself tonight")
    log = conversation(page)
    for number in CRISIS:
        log.get_by_text(number, exact=False).first.wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Leave quickly").count() >= 1  # quick replies are real buttons
    no_serious_accessibility_problems(page)
    page.context.close()


def test_in_the_browser_exit_this_page_leaves_nothing_behind_and_ends_the_session(browser, web) -> None:
    page = open_chat(browser, web)
    send(page, "hello")
    conversation(page).get_by_text("0800 1111", exact=False).first.wait_for(timeout=60_000)
    cookie = page.context.cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Exit this page").click()
    page.wait_for_url(web.exit_url, timeout=10_000)
    page.go_back()
    assert not page.url.startswith(web.url)  # location.replace: Back does not return to the chat
    # The session ended on the server: the same cookie now gets a new, empty chat.
    again = page.context.new_page()
    again.goto(web.url + "/")
    assert conversation(again).inner_text().strip() == ""
    storage = again.evaluate(
        "() => [localStorage.length, sessionStorage.length, typeof caches === 'undefined' ? 0 : 1]"
    )
    assert storage[0] == 0 and storage[1] == 0
    page.context.close()


def test_in_the_browser_pressing_shift_three_times_exits(browser, web) -> None:
    page = open_chat(browser, web)
    page.locator("body").click()
    for _ in range(3):
        page.keyboard.press("Shift")
    page.wait_for_url(web.exit_url, timeout=10_000)
    page.context.close()


def test_in_the_browser_with_javascript_off_the_form_still_works(browser, web) -> None:
    page = open_chat(browser, web, java_script_enabled=False)
    send(page, "someone keeps sending me horrible messages")
    page.wait_for_load_state()
    assert "horrible messages" in conversation(page).inner_text()
    assert "0800 1111" in conversation(page).inner_text()
    page.context.close()


def test_in_the_browser_at_320_px_with_the_keyboard_only(browser, web) -> None:
    page = open_chat(browser, web, viewport={"width": 320, "height": 640})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 320  # nothing off the side
    page.keyboard.press("Tab")  # the first stop is the way out
    assert page.evaluate("() => document.activeElement.textContent") == "Exit this page"
    page.get_by_role("textbox", name="Message").focus()
    page.keyboard.type("my friend's account got hacked")
    page.keyboard.press("Enter")
    conversation(page).get_by_text("0800 1111", exact=False).first.wait_for(timeout=60_000)
    no_serious_accessibility_problems(page)
    page.context.close()


PHONE = {"width": 390, "height": 844}  # a common phone's screen in CSS pixels (iPhone 12 to 14)


def test_in_the_browser_on_a_phone_a_conversation_fits_the_screen_with_the_way_out_in_view(
    browser, web
) -> None:
    """A short conversation on a phone: nothing off the side, quick replies wrap, and Exit this page stays
    on screen however far the page scrolls. With SIGNPOST_SCREENSHOT=<file.png> the screen is saved
    there too (the README's picture: `SIGNPOST_SCREENSHOT=docs/img/web-chat-phone.png`)."""
    page = open_chat(browser, web, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    send(page, "hi")
    log = conversation(page)
    log.get_by_text("0800 1111", exact=False).first.wait_for(timeout=60_000)
    before = log.locator(".ours").count()
    send(page, "someone i met on a game keeps asking me to send pics and says not to tell anyone")
    log.locator(".ours").nth(before).wait_for(timeout=60_000)  # the answer has come
    page.wait_for_function("() => document.getElementById('typing').hidden", timeout=60_000)
    page.get_by_role("textbox", name="Message").scroll_into_view_if_needed()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing off the side
    for button in log.get_by_role("button").all():
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    exit_box = page.get_by_role("button", name="Exit this page").bounding_box()
    assert page.evaluate("() => window.scrollY") > 0  # the page did scroll ...
    assert exit_box is not None and 0 <= exit_box["y"] < PHONE["height"]  # ... and the way out is in view
    no_serious_accessibility_problems(page)
    shot = os.environ.get("SIGNPOST_SCREENSHOT")
    if shot:  # the person's message just under the sticky way out, as they read the answer
        page.evaluate(
            """() => { document.activeElement.blur();
                const mine = [...document.querySelectorAll('.mine')].pop();
                const top = document.querySelector('.top').offsetHeight;
                window.scrollTo(0, mine.getBoundingClientRect().top + window.scrollY - top - 12); }"""
        )
        page.screenshot(path=shot)
    page.context.close()
