"""The text catalogues: complete, current, consistent, and the only home of user-facing words.

``bot/locales/messages.pot`` is what the code asks for (``pybabel extract``); each language's
``messages.po`` must translate every entry of it, keep every ``{placeholder}``, have the plural
forms its language needs, and hold nothing the code no longer uses. Cyrillic string literals in
``bot/`` would be Russian text outside the catalogue.
"""

from __future__ import annotations

import re
import string
import tokenize
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot import i18n
from bot.i18n import LOCALES, duration, locale_for_language_code, ngettext, use_locale

BOT = Path(i18n.__file__).resolve().parent
LOCALES_DIR = BOT / "locales"
KEYWORDS = {"_": None, "ngettext": (1, 2)}
CYRILLIC = re.compile("[\u0400-\u04ff]")


def code_messages() -> set[str | tuple[str, str]]:
    """Every msgid the code of ``bot/`` asks for, as ``pybabel extract`` finds it."""
    found: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(BOT), keywords=KEYWORDS, comment_tags=()
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def catalog_ids(catalog: Catalog) -> set[str | tuple[str, str]]:
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


def test_the_template_is_what_the_code_asks_for() -> None:
    template = read_catalog(LOCALES_DIR / "messages.pot")
    code = code_messages()
    assert code, "no message found in bot/: the extraction keywords are wrong"
    missing = code - catalog_ids(template)
    stale = catalog_ids(template) - code
    assert not missing, f"run pybabel extract (docs/architecture.md): new strings {missing}"
    assert not stale, f"run pybabel extract: strings the code no longer uses {stale}"


@pytest.mark.parametrize("locale", LOCALES)
def test_each_language_translates_every_string(locale: str) -> None:
    catalog = read_catalog(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po", locale)
    code = code_messages()
    assert catalog_ids(catalog) == code, "run pybabel update (docs/architecture.md)"
    expected_forms = catalog.num_plurals
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, f"{locale}: fuzzy translation of {message.id!r}"
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if len(ids) == 2:
            assert len(strings) == expected_forms, f"{locale}: plural forms of {ids[0]!r}"
        assert all(strings), f"{locale}: untranslated {ids[0]!r}"
        wanted = placeholders(ids[0]) | placeholders(ids[-1])
        for text in strings:
            assert placeholders(text) == wanted, f"{locale}: placeholders of {ids[0]!r}"


def test_russian_is_russian() -> None:
    """The default language is complete: every Russian string with words holds Cyrillic."""
    catalog = read_catalog(LOCALES_DIR / "ru" / "LC_MESSAGES" / "messages.po", "ru")
    latin_only = []
    for message in catalog:
        if not message.id:
            continue
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        for text in strings:
            words = re.sub(r"\{[^}]*\}|--\w+|/\w+|[A-Z]\w*", "", text)
            if re.search("[a-z]{3,}", words) and not CYRILLIC.search(text):
                latin_only.append(text)
    assert latin_only == []


def test_no_cyrillic_string_literal_in_the_code() -> None:
    """Every Russian word the bot says comes from the catalogue."""
    found = []
    for path in sorted(BOT.rglob("*.py")):
        with path.open("rb") as source:
            for token in tokenize.tokenize(source.readline):
                if token.type == tokenize.STRING and CYRILLIC.search(token.string):
                    found.append(f"{path.relative_to(BOT.parent)}:{token.start[0]}")
    assert found == []


@pytest.mark.parametrize(
    ("n", "text"),
    [(1, "1 кадр"), (2, "2 кадра"), (5, "5 кадров"), (11, "11 кадров"), (21, "21 кадр"),
     (22, "22 кадра"), (112, "112 кадров")],
)  # fmt: skip
def test_russian_plurals_come_from_the_catalogue(n: int, text: str) -> None:
    with use_locale("ru"):
        assert ngettext("{n} frame", "{n} frames", n).format(n=n) == text
    with use_locale("en"):
        assert (
            ngettext("{n} frame", "{n} frames", n)
            .format(n=n)
            .endswith("frame" if n == 1 else "frames")
        )


def test_durations_come_from_cldr() -> None:
    with use_locale("ru"):
        assert duration(8) == "8 с"
        assert duration(80) == "1 мин 20 с"
        assert duration(3600 + 300) == "1 ч 5 мин"
        assert duration(3 * 86400 + 4 * 3600) == "3 дн. 4 ч"
        assert duration(None) == "—"
    with use_locale("en"):
        assert duration(80) == "1 min 20 sec"
        assert duration(7200) == "2 hr"


@pytest.mark.parametrize(
    ("code", "locale"),
    [(None, "ru"), ("", "ru"), ("ru", "ru"), ("uk", "ru"), ("kk", "ru"), ("en", "en"),
     ("en-US", "en"), ("de", "en"), ("pt-br", "en")],
)  # fmt: skip
def test_language_from_telegram(code: str | None, locale: str) -> None:
    assert locale_for_language_code(code) == locale
