"""The web chat's per-address limit across adapters (bot/web/addresses.py): two web chat apps stand for two
adapters behind one URL, and one address's posts alternate between them, as a round-robin proxy sends them.

In memory each adapter counts alone; with Redis (TEST_REDIS_URL) they share one bucket per address, which
is named by a keyed hash and holds no address. When Redis doesn't answer, each adapter limits on its own
again, and says so without the address.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

from bot.flood import Limits
from bot.responses import response_text
from bot.settings import SettingsError, load_settings
from bot.web.addresses import MemoryAddresses, RedisAddresses, connect
from bot.web.app import WebChat
from bot.web.chats import WebChats
from scripts.stack import free_port
from tests.bot.conftest import KEY, TRANSCRIPT_KEY
from tests.bot.test_web import EXIT_URL, Browser

pytestmark = pytest.mark.anyio

LIMITS = Limits(burst=4, per_minute=1)  # no token comes back within a test
FLOODING = "198.51.100.23"
OTHER = "203.0.113.5"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: the per-address limit shared by adapters needs Redis")
    return url


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted after."""
    mine = f"signpost-test:{uuid.uuid4().hex}:"
    yield mine
    redis = connect(redis_url)
    for key in await redis.keys(mine + "*"):
        await redis.delete(key)
    await redis.aclose()


async def two_adapters(harness, *limits: object) -> list[WebChat]:
    """Two web chat apps over one core (the limit is what is tested), each with its own limit object."""
    chats = WebChats()
    h = await harness(web=chats)
    return [WebChat(h.relay, chats, EXIT_URL, addresses) for addresses in limits]  # type: ignore[arg-type]


async def post_from(address: str, chat: WebChat) -> int:
    """A new browser at this address posts one message (a flood script opens a new session each time)."""
    browser = Browser(chat.app(), address=address)
    await browser.open()
    answer = await browser.post("/send", message="x")
    if answer.status_code == 429:
        assert answer.text == response_text("utter_web_busy")  # refused kindly
    return answer.status_code


async def alternate(address: str, adapters: list[WebChat], posts: int) -> list[int]:
    """`posts` posts from one address, taking turns between the adapters; their answers' status codes."""
    return [await post_from(address, adapters[n % len(adapters)]) for n in range(posts)]


async def test_in_memory_each_adapter_limits_an_address_on_its_own(harness) -> None:
    a, b = await two_adapters(harness, MemoryAddresses(LIMITS), MemoryAddresses(LIMITS))
    answers = await alternate(FLOODING, [a, b], 2 * LIMITS.burst + 2)
    assert answers == [202] * (2 * LIMITS.burst) + [429, 429]  # each adapter let its own burst through
    await a.done()
    await b.done()


async def test_with_redis_two_adapters_share_one_limit_and_redis_never_holds_the_address(
    harness, redis_url: str, prefix: str
) -> None:
    limits = [RedisAddresses(connect(redis_url), LIMITS, KEY.encode(), prefix=prefix) for _ in range(2)]
    a, b = await two_adapters(harness, *limits)
    answers = await alternate(FLOODING, [a, b], LIMITS.burst + 2)
    assert answers == [202] * LIMITS.burst + [429, 429]  # one burst between the two adapters
    assert await alternate(OTHER, [b, a], 2) == [202, 202]  # another address has its own bucket
    redis = connect(redis_url)
    keys = sorted(k.decode() for k in await redis.keys(prefix + "*"))
    assert len(keys) == 2 and keys == sorted({limits[0].ref(FLOODING), limits[1].ref(OTHER)})
    for key in keys:
        stored = b" ".join(b" ".join(pair) for pair in (await redis.hgetall(key)).items())
        for address in (FLOODING, OTHER):
            assert address not in key and address.encode() not in stored
        assert 0 < await redis.ttl(key) <= LIMITS.burst * 60 / LIMITS.per_minute + 1  # it expires
    for limit in limits:
        await limit.close()
    await redis.aclose()
    await a.done()
    await b.done()


async def test_the_redis_client_selects_the_urls_database(redis_url: str) -> None:
    other = urlparse(redis_url)._replace(path="/3").geturl()
    redis = connect(other)
    assert await redis.ping()
    assert int((await redis.client_info())["db"]) == 3
    await redis.aclose()


async def test_when_redis_does_not_answer_each_adapter_limits_alone_and_logs_no_address(
    harness, caplog
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limit = RedisAddresses(connect(nowhere), LIMITS, KEY.encode())
    (a,) = await two_adapters(harness, limit)
    with caplog.at_level(logging.INFO):
        answers = await alternate(FLOODING, [a], LIMITS.burst + 1)
    assert answers == [202] * LIMITS.burst + [429]  # still limited, by this adapter alone
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.web.addresses"]
    assert len(warnings) == 1 and "Redis did not answer" in warnings[0]  # said once, not per request
    assert all(FLOODING not in r.getMessage() for r in caplog.records)
    await a.done()


def test_redis_url_is_checked_at_start_and_its_password_never_shown() -> None:
    base = {"PSEUDONYM_KEY": KEY, "TRANSCRIPT_KEYS": TRANSCRIPT_KEY}
    assert load_settings(base).redis_url is None  # in memory
    settings = load_settings({**base, "REDIS_URL": "redis://:hunter2-redis@redis.internal:6379/1"})
    assert settings.redis_url == "redis://:hunter2-redis@redis.internal:6379/1"
    assert "hunter2-redis" not in repr(settings)
    for wrong in ("127.0.0.1:6379", "http://redis:6379/0", "redis://redis:6379/one"):
        with pytest.raises(SettingsError, match="REDIS_URL"):
            load_settings({**base, "REDIS_URL": wrong})
