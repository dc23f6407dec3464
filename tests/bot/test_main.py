"""`python -m bot` as a person starts it: the terminal chat (`chat`) shows the chat, not the machinery's logs;
the web chat refuses a database nobody migrated."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TRANSCRIPT_KEY = "wJmQlB0KkBd1mV7mS4mF9lY0b8GqRt5nqvG3mZb2yUQ="


def test_the_terminal_chat_on_a_fresh_database_shows_no_migration_logs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",  # the terminal chat, whatever .env says
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "RASA_URL": "http://127.0.0.1:9",  # never reached: the person leaves at once
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",  # migrated at start-up
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "Signpost terminal chat" in done.stdout and "Bye." in done.stdout  # the chat really ran ...
    assert (tmp_path / "fresh.db").exists()  # ... on a database it migrated
    assert "alembic" not in shown.lower()
    assert "INFO" not in shown


def test_telegram_mode_on_a_database_nobody_migrated_refuses_to_start_and_says_what_to_run(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "1:TEST",
        "TELEGRAM_BASE_URL": "http://127.0.0.1:9/bot",  # never reached: it stops before connecting
        "MODERATOR_CHAT_ID": "-100",
        "MODERATOR_USER_IDS": "7",
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
        "RASA_ENDPOINTS": "endpoints.yml",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not up to date" in done.stderr and "make ready" in done.stderr


def test_the_web_chat_alone_on_a_database_nobody_migrated_refuses_to_start_and_says_what_to_run(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",  # the web chat alone
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not up to date" in done.stderr and "make ready" in done.stderr


def test_the_web_chat_alone_prints_its_address_and_serves_the_page(tmp_path: Path) -> None:
    import httpx

    from actions.db import upgrade
    from scripts.stack import free_port

    database = f"sqlite:///{tmp_path / 'signpost.db'}"
    upgrade(database)  # `make ready`'s work
    port = free_port()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",  # the web chat alone
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "RASA_URL": "http://127.0.0.1:9",  # unreachable: the adapter starts at once and says so
        "DATABASE_URL": database,
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
        "WEB_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = f"http://127.0.0.1:{port}/"
        printed: list[str] = []
        while not any(address in line for line in printed):  # it says where the chat is
            line = process.stdout.readline()
            assert line, "".join(printed)  # it stopped without saying
            printed.append(line)
        page = httpx.get(address, timeout=10)
        assert page.status_code == 200 and "Exit this page" in page.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_on_one_port_the_adapter_serves_the_web_chat_and_takes_telegrams_updates(tmp_path: Path) -> None:
    """WEBHOOK_PORT = WEB_PORT: the web chat's server takes Telegram's posts (`bot.app.TelegramWebhook`);
    the fake Bot API delivers to it with the secret, as Telegram does, and a stranger's post is refused."""
    import httpx

    from actions.db import upgrade
    from scripts.stack import free_port
    from tests.e2e.fake_telegram import SECRET_TOKEN_HEADER, FakeTelegram

    database = f"sqlite:///{tmp_path / 'signpost.db'}"
    upgrade(database)
    port, secret, person = free_port(), "one-port-" + "s" * 24, 5_550_001
    with FakeTelegram(webhook_via=f"http://127.0.0.1:{port}") as fake:
        fake.add_group(-100900, "Signpost moderators")
        fake.start_private_chat(person)
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_BASE_URL": fake.base_url,
            "MODERATOR_CHAT_ID": "-100900",
            "MODERATOR_USER_IDS": "7",
            "PSEUDONYM_KEY": "k" * 40,
            "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
            "RASA_URL": "http://127.0.0.1:9",  # down: the person still gets the crisis numbers
            "DATABASE_URL": database,
            "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
            "RASA_ENDPOINTS": "endpoints.yml",
            "WEBHOOK_URL": "https://signpost.test/telegram",
            "WEBHOOK_SECRET": secret,
            "WEB_PORT": str(port),
            "WEBHOOK_PORT": str(port),
        }
        log = (tmp_path / "adapter.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            registered = fake.wait_for_call("setWebhook", timeout=120)
            assert registered.params["url"] == "https://signpost.test/telegram"
            assert registered.params["secret_token"] == secret
            page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
            assert page.status_code == 200 and "Exit this page" in page.text
            stranger = {"update_id": 99, "message": {"message_id": 1, "date": 0, "text": "hi"}}
            for headers in ({}, {SECRET_TOKEN_HEADER: "not-the-secret"}):
                forged = httpx.post(f"http://127.0.0.1:{port}/telegram", json=stranger, headers=headers)
                assert forged.status_code == 403
            fake.user_sends_text(person, "hello, is anyone there")  # delivered to our port with the secret
            reply = fake.wait_for_message(person, lambda m: "0800 1111" in m["text"], timeout=60)
            assert "116 123" in reply["text"]
            assert [d.delivered for d in fake.webhook_deliveries()] == [True]
            assert fake.calls("getUpdates") == []  # webhook mode: nobody polls
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
        shown = (tmp_path / "adapter.log").read_text()
        assert "is anyone there" not in shown and secret not in shown


def test_with_redis_url_the_adapter_counts_web_posts_in_redis(tmp_path: Path) -> None:
    """REDIS_URL reaches the web chat: a post's address bucket is in Redis, named by its keyed hash."""
    import asyncio

    import pytest

    from bot.web.addresses import RedisAddresses, connect
    from bot.web.app import ADDRESS_LIMITS

    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("TEST_REDIS_URL is not set: the per-address limit shared by adapters needs Redis")
    key = "r" * 40
    bucket = RedisAddresses(connect(redis_url), ADDRESS_LIMITS, key.encode()).ref("127.0.0.1")

    async def redis(*command: str) -> object:
        client = connect(redis_url)
        try:
            return await client.execute_command(*command)
        finally:
            await client.aclose()

    asyncio.run(redis("DEL", bucket))
    try:
        with web_chat_alone(tmp_path, PSEUDONYM_KEY=key, REDIS_URL=redis_url) as url:
            sent = post_message(url, "hi")
        assert sent == 202
        assert asyncio.run(redis("EXISTS", bucket)) == 1  # counted in Redis, under the address's hash
    finally:
        asyncio.run(redis("DEL", bucket))


@contextmanager
def web_chat_alone(tmp_path: Path, **settings: str) -> Iterator[str]:
    """Run `python -m bot`: the web chat alone (Rasa unreachable), until the block ends; yield its URL."""
    import httpx

    from actions.db import upgrade
    from scripts.stack import free_port

    database = f"sqlite:///{tmp_path / 'signpost.db'}"
    upgrade(database)
    port = free_port()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "RASA_URL": "http://127.0.0.1:9",
        "DATABASE_URL": database,
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
        "WEB_PORT": str(port),
        **settings,
    }
    with (tmp_path / "adapter.log").open("a") as log:
        process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                assert process.poll() is None, (tmp_path / "adapter.log").read_text()
                try:
                    httpx.get(url + "/", timeout=2).raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def post_message(url: str, text: str, **headers: str) -> int:
    """A new browser opens the page and posts one message, as the page's script does; the status."""
    import httpx

    with httpx.Client(base_url=url, timeout=10) as browser:
        token = re.search(r'name="token" value="([0-9a-f]+)"', browser.get("/").text)
        assert token
        return browser.post(
            "/send",
            data={"token": token.group(1), "message": text},
            headers={"x-requested-with": "signpost", **headers},
        ).status_code


def test_the_web_chat_counts_the_forwarded_address_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """Behind nginx (FORWARDED_ALLOW_IPS names it) each browser's own address is limited; a client that is
    not the proxy can't choose its address with X-Forwarded-For. Nothing logs the addresses."""
    from bot.web.app import ADDRESS_LIMITS

    # Twice the burst: one address gets a token back each second, far fewer than these posts take.
    posts = 2 * ADDRESS_LIMITS.burst
    with web_chat_alone(tmp_path) as url:  # the default: loopback is the proxy, as nginx on this host
        behind_proxy = [
            post_message(url, "hi", **{"x-forwarded-for": f"198.51.100.{n}"}) for n in range(posts)
        ]
    with web_chat_alone(tmp_path, FORWARDED_ALLOW_IPS="192.0.2.1") as url:  # we are not the proxy
        forged = [post_message(url, "hi", **{"x-forwarded-for": f"198.51.100.{n}"}) for n in range(posts)]
    assert behind_proxy == [202] * posts  # each forwarded address has its own limit
    assert forged[: ADDRESS_LIMITS.burst] == [202] * ADDRESS_LIMITS.burst
    assert 429 in forged  # one address: the forged headers count for nothing
    assert "198.51.100." not in (tmp_path / "adapter.log").read_text()
