"""BLOCKED_WORDS_FILE: the file format, matching across Russian and English word forms, the
normalisation that keeps simple tricks out, reloading, and the counters /stats reads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.policy import ContentPolicy, PolicyFileError
from bot.policy.words import parse_entries
from bot.services.policy import PolicyService
from bot.storage import db
from bot.storage.policy import PolicyCounts, PolicyKind

LIST = """\
# Operator's list: one word or phrase per line
взрыв
бомба   # an inline comment
мат
kill
blood bath
плохой человек
яд*

"""


@pytest.fixture
def policy(tmp_path: Path) -> ContentPolicy:
    path = tmp_path / "blocked.txt"
    path.write_text(LIST, encoding="utf-8")
    return ContentPolicy(path, reload_interval=0)


@pytest.mark.parametrize(
    "text",
    [
        "взрыв",
        "Взрывы над городом",
        "кот и взрывом",
        "много взрывов",
        "БОМБЫ падают",
        "с бомбой",
        "матом ругается",
        "he kills the dragon",
        "Killing time",
        "a blood bath at dawn",
        "Blood-baths!",
        "очень плохой человек",
        "плохому человеку",
        "ПЛОХИЕ, ЧЕЛОВЕКИ",
        "ядовитый гриб",
    ],
)
def test_blocked_in_any_form(policy: ContentPolicy, text: str) -> None:
    assert policy.check(text).blocked, text


@pytest.mark.parametrize(
    "text",
    [
        "кот играет на пианино",
        "взрывной характер",  # stem "взрывн" is another word than "взрыв"
        "взрывчатка",  # "взрывчатк"
        "материал для платья",  # "материа", not "мат"
        "математика",
        "skill tree",  # not "kill"
        "killer whale",  # the English stemmer keeps "killer" apart
        "blood orange",  # a phrase needs all of its words, in order
        "bath of blood",
        "плохой день, хороший человек",
        "",
    ],
)
def test_not_blocked(policy: ContentPolicy, text: str) -> None:
    assert policy.check(text).allowed, text


@pytest.mark.parametrize(
    "text",
    [
        "вз\u00adрыв",  # soft hyphen inside the word
        "взр\u200bыв",  # zero-width space
        "взpыв",  # a Latin "p" in a Cyrillic word
        "ВЗРЫВ",
        "«взрыв»!!!",
        "ｋｉｌｌ",  # full-width letters
        "бомбa",  # a Latin "a" at the end
    ],
)
def test_simple_tricks_are_normalised(policy: ContentPolicy, text: str) -> None:
    assert policy.check(text).blocked, text


def test_yo_is_ye(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("ёж\n", encoding="utf-8")
    policy = ContentPolicy(path)
    assert policy.check("ежи в лесу").blocked and policy.check("Ёжик").allowed
    assert policy.check("ЁЖ").blocked


def test_file_format_comments_blank_lines_and_line_numbers() -> None:
    entries = parse_entries(LIST.splitlines())
    assert [e.line for e in entries] == [2, 3, 4, 5, 6, 7, 8]
    assert entries[1].parts == (("бомб", False),)  # the comment is not a word of the entry
    assert entries[4].parts == (("blood", False), ("bath", False))
    assert entries[6].parts == (("яд", True),)
    assert parse_entries(["# only a comment", "   ", "#взрыв"]) == []


def test_verdict_names_the_entry_not_the_words(policy: ContentPolicy) -> None:
    verdict = policy.check("Взрывы над городом")
    assert verdict.entry is not None and verdict.entry.line == 2
    described = verdict.describe()
    assert "line 2" in described and "взрыв" not in described and "город" not in described


def test_check_all_finds_the_blocked_one(policy: ContentPolicy) -> None:
    assert policy.check_all("кот", "", None, "взрыв").blocked
    assert policy.check_all("кот", None).allowed


def test_no_file_allows_everything() -> None:
    policy = ContentPolicy(None)
    assert not policy.enabled and policy.check("взрыв").allowed


def test_a_missing_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="no such file"):
        ContentPolicy(tmp_path / "absent.txt")


def test_reloaded_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("взрыв\n", encoding="utf-8")
    policy = ContentPolicy(path, reload_interval=0)
    assert policy.check("дракон").allowed
    path.write_text("взрыв\nдракон\n", encoding="utf-8")
    os.utime(path, ns=(1, 10**18))  # a new modification time, whatever the clock's resolution
    assert policy.check("драконы").blocked
    path.unlink()  # gone later: the last good list stays (logged)
    assert policy.check("драконы").blocked and policy.entries == 2


def test_an_unreadable_change_keeps_the_last_list(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("взрыв\n", encoding="utf-8")
    policy = ContentPolicy(path, reload_interval=0)
    path.write_bytes(b"\xff\xfe\xfa broken")
    os.utime(path, ns=(1, 10**18))
    assert policy.check("взрыв").blocked


async def test_refusals_are_counted_and_logged_without_the_text(
    policy: ContentPolicy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.sqlite3"
    conn = await db.connect(path)
    await db.migrate(conn)
    service = PolicyService(policy, PolicyCounts(conn))
    prompt = "секретный план: взрывы на площади"
    with caplog.at_level(logging.INFO):
        verdict = await service.screen(777, (prompt, ""), kind=PolicyKind.PROMPT)
        assert verdict.blocked
        assert (await service.screen(777, ("кот",), kind=PolicyKind.PROMPT)).allowed
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "777" in logged and "list line 2" in logged
    assert "секретный" not in logged and "площад" not in logged and "взрыв" not in logged
    await service.record(PolicyKind.VIDEO, 777, 5, "video classified nsfw 0.99")
    await conn.close()

    conn = await db.connect(path)  # a restart: the counts are in the database
    try:
        counts = await PolicyCounts(conn).counts()
        assert counts == {"prompt": (1, 1), "render": (0, 0), "video": (1, 1)}
    finally:
        await conn.close()


async def test_counts_split_today_and_total(tmp_path: Path) -> None:
    conn = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(conn)
    now = [1_700_000_000.0]
    counts = PolicyCounts(conn, clock=lambda: now[0])
    try:
        await counts.add(PolicyKind.PROMPT)
        await counts.add(PolicyKind.PROMPT)
        now[0] += 86400
        await counts.add(PolicyKind.PROMPT)
        assert (await counts.counts())["prompt"] == (1, 3)
    finally:
        await conn.close()
