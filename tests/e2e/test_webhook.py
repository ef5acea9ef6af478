"""Webhook mode (bot/telegram/webhook.py) against the fake Bot API, which POSTs updates to the
bot's server as Telegram does: the secret is checked on every call, 200 only after the update is
stored, a re-delivered update is handled once, a failed write makes Telegram deliver again."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.telegram.webhook import SECRET_HEADER, WebhookRefused
from tests.e2e.harness import all_delivered, query, running_bot, until
from tests.fakes.telegram import WEBHOOK_SECRET, FakeTelegram, WebhookDelivery

pytestmark = pytest.mark.e2e

ALICE, BOB = 1001, 1002


@pytest.fixture
def mode() -> str:
    return "webhook"


def inbox_ids(data_dir: Path) -> list[int]:
    return [row[0] for row in query(data_dir, "SELECT update_id FROM update_inbox ORDER BY 1")]


def a_request(update_id: int, user_id: int = ALICE, text: str = "кот на луне") -> dict[str, Any]:
    """An update as Telegram would send it: a private text message that queues a job."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 77,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Мэллори"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Мэллори"},
            "text": text,
        },
    }


async def test_set_webhook_gets_url_secret_and_update_types(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path) as app:
        (call,) = tg.calls_of("setWebhook")
        info = await app.bot.get_webhook_info()
    assert call.params["url"] == app.settings.webhook_url
    assert call.params["secret_token"] == WEBHOOK_SECRET
    assert sorted(call.params["allowed_updates"]) == ["callback_query", "message"]
    assert call.params["drop_pending_updates"] is False
    assert info.url == app.settings.webhook_url
    # A stopped bot leaves the webhook set: Telegram keeps what arrives meanwhile.
    assert not tg.calls_of("deleteWebhook") and tg.webhook is not None


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", WEBHOOK_SECRET + "x"])
async def test_a_forged_call_gets_401_and_changes_nothing(
    tg: FakeTelegram, tmp_path: Path, secret: str | None
) -> None:
    async with running_bot(tg, tmp_path):
        tg.push_message("/start", user_id=BOB)  # a genuine update, for comparison
        await until(lambda: tg.sent(BOB))
        before = len(tg.calls)
        status = await tg.post_webhook(a_request(900_001), secret=secret)
        await asyncio.sleep(0.3)  # room for a job, a row or a reply to show up
    assert status == 401
    assert inbox_ids(tmp_path) == [tg.last_update_id]  # only the genuine one
    assert query(tmp_path, "SELECT COUNT(*) FROM jobs") == [(0,)]
    assert not tg.sent(ALICE)
    assert not [c for c in tg.calls[before:] if c.method.startswith(("send", "edit"))]


async def test_a_call_that_is_not_an_update_gets_400(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path) as app:
        assert app.settings.webhook_url is not None
        async with aiohttp.ClientSession() as client:
            for body in (b"not json", b'{"message": 1}', b"[1, 2]"):
                async with client.post(
                    app.settings.webhook_url, data=body, headers={SECRET_HEADER: WEBHOOK_SECRET}
                ) as response:
                    assert response.status == 400, body
    assert inbox_ids(tmp_path) == []


async def test_the_update_is_stored_before_the_200(tg: FakeTelegram, tmp_path: Path) -> None:
    """Every 200 finds its update already committed, even with a slow database."""
    unstored_at_200: list[int] = []

    def check(delivery: WebhookDelivery) -> None:
        if delivery.status == 200 and delivery.update_id not in inbox_ids(tmp_path):
            unstored_at_200.append(delivery.update_id)

    tg.on_webhook_answer = check
    async with running_bot(tg, tmp_path) as app:
        inbox = app.dp.inbox
        real_store = inbox.store

        async def slow_store(updates: Any) -> set[int]:
            await asyncio.sleep(0.3)  # a busy disk: the answer must wait for the commit
            return await real_store(updates)

        inbox.store = slow_store
        for user, text in ((ALICE, "кот"), (BOB, "собака"), (ALICE + 10, "/help")):
            tg.push_message(text, user_id=user)
        await until(lambda: tg.confirmed_offset > tg.last_update_id)
        await all_delivered(tmp_path, 2)
    assert [d.status for d in tg.webhook_deliveries] == [200, 200, 200]
    assert not unstored_at_200


async def test_a_failed_write_gets_500_and_telegram_delivers_again(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path) as app:
        inbox = app.dp.inbox
        real_store, failures = inbox.store, []

        async def flaky_store(updates: Any) -> set[int]:
            if len(failures) < 2:
                failures.append([u.update_id for u in updates])
                raise sqlite3.OperationalError("database is locked")
            return await real_store(updates)

        inbox.store = flaky_store
        tg.push_message("кот", user_id=ALICE)
        update_id = tg.last_update_id
        await all_delivered(tmp_path, 1)
        await asyncio.sleep(0.3)
    assert failures == [[update_id], [update_id]]
    assert [d.status for d in tg.webhook_deliveries] == [500, 500, 200]
    assert query(tmp_path, "SELECT update_id FROM jobs") == [(update_id,)]
    assert len(tg.calls_of("sendMessage", ALICE, ok=True)) == 1 and len(tg.videos(ALICE)) == 1


async def test_a_replayed_webhook_update_is_handled_once(tg: FakeTelegram, tmp_path: Path) -> None:
    """A request (whose job is idempotent anyway) and /help (which would answer again)."""
    async with running_bot(tg, tmp_path):
        updates = []
        for user, text in ((ALICE, "/gen кот --steps 2"), (BOB, "/help")):
            message = tg.push_message(text, user_id=user)
            updates.append({"update_id": tg.last_update_id, "message": message})
        await all_delivered(tmp_path, 1)
        await until(lambda: tg.sent(BOB))
        # Telegram sends them again (our 200 was lost), in order and out of order, and copies
        # arrive at the same time.
        statuses = []
        for update in updates:
            tg.resend(update)
            statuses += [await tg.post_webhook(update) for _ in range(2)]
            statuses += await asyncio.gather(tg.post_webhook(update), tg.post_webhook(update))
        await until(lambda: not tg.pending_updates())
        await asyncio.sleep(0.3)  # room for a second job or answer to show up
    assert statuses == [200] * 8
    assert query(tmp_path, "SELECT COUNT(*) FROM jobs") == [(1,)]
    assert len(tg.calls_of("sendMessage", ALICE, ok=True)) == 1
    assert len(tg.videos(ALICE)) == 1
    assert len(tg.calls_of("sendMessage", BOB, ok=True)) == 1  # one /help answer
    assert query(tmp_path, "SELECT COUNT(*), SUM(done) FROM update_inbox") == [(2, 2)]


async def test_updates_wait_at_telegram_while_the_bot_is_down(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """Pushed while no bot listens: Telegram retries until the restarted bot answers 200."""
    async with running_bot(tg, tmp_path) as app:
        settings = app.settings
    tg.push_message("кот", user_id=ALICE)
    tg.push_message("собака", user_id=BOB)
    await until(lambda: len(tg.webhook_deliveries) >= 3)  # refused: nobody listens
    assert {d.status for d in tg.webhook_deliveries} == {0}
    async with running_bot(
        tg,
        tmp_path,
        webhook_url=settings.webhook_url,
        webhook_listen=settings.webhook_listen,
    ):
        await all_delivered(tmp_path, 2)
    assert query(tmp_path, "SELECT user_id FROM jobs ORDER BY id") == [(ALICE,), (BOB,)]
    assert len(tg.videos(ALICE)) == 1 and len(tg.videos(BOB)) == 1


async def test_polling_again_deletes_the_webhook(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path):
        pass
    tg.push_message("кот", user_id=ALICE)  # waits at Telegram: nobody listens
    async with running_bot(tg, tmp_path, mode="polling"):
        await all_delivered(tmp_path, 1)
    assert tg.webhook is None
    (delete,) = tg.calls_of("deleteWebhook")
    assert delete.params.get("drop_pending_updates") is False
    assert len(tg.videos(ALICE)) == 1


async def test_polling_survives_a_webhook_set_behind_its_back(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """Telegram answers getUpdates with 409 while a webhook is set: polling deletes it again."""
    async with running_bot(tg, tmp_path, mode="polling") as app:
        await app.bot.set_webhook("https://127.0.0.1:9/hook")
        await until(lambda: tg.calls_of("getUpdates", ok=False))
        tg.push_message("кот", user_id=ALICE)
        await all_delivered(tmp_path, 1)
    assert tg.calls_of("getUpdates", ok=False)[0].status == 409
    assert len(tg.calls_of("deleteWebhook")) == 2 and tg.webhook is None


async def test_a_refused_webhook_url_stops_the_bot_with_the_reason(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    tg.fail("setWebhook", status=400, description="Bad Request: bad webhook: IP address is local")
    with pytest.raises(WebhookRefused, match="IP address is local"):
        async with running_bot(tg, tmp_path):
            pass


async def test_health_expects_no_getupdates_in_webhook_mode(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path) as app:
        assert app.observability is not None and app.observability.health is not None
        check = app.observability.health.updates_arrive()
    assert app.observability.heartbeat.webhook
    assert check.ok and "webhook" in str(check)
