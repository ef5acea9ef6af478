"""Texts in the user's language: gettext catalogues read through aiogram's ``I18n``.

Why gettext + Babel (and not Fluent): the catalogues are ordinary ``.po`` files that every
translation tool reads (Poedit, Weblate, Crowdin), the plural rules are the ``Plural-Forms`` that
Babel writes from CLDR for each language, and Babel also formats numbers and durations from
CLDR data. aiogram ships the matching ``I18n`` and ``I18nMiddleware``, so nothing here is a
framework of our own.

Source strings (msgids) are English and live in :mod:`bot.texts`; ``bot/locales/<lang>/
LC_MESSAGES/messages.po`` hold Russian (the default, complete) and English. The ``.po`` files are
compiled in memory at start with Babel (:class:`Catalogues`), so no binary ``.mo`` file is kept
in the repository or can go stale. ``tests/unit/test_i18n.py`` fails when a string in the code is
missing from a catalogue, untranslated, or when a catalogue holds strings the code no longer
uses. How to add a string or a language: docs/architecture.md.

Worker-side code (status messages, delivery) runs outside any update: it picks the job's stored
locale with :func:`use_locale`.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit

DOMAIN = "messages"
DEFAULT_LOCALE = "ru"
LOCALES = ("ru", "en")
"""Languages a user can pick in /settings; the first is the default."""

RUSSIAN_READERS = frozenset(
    {"ru", "uk", "be", "kk", "ky", "uz", "tg", "tk", "hy", "az", "ka", "mo"}
)
"""Telegram language codes whose users get Russian without choosing it (CIS languages). Users
with any other code get English; users without a code get the default (Russian)."""


def locales_dir() -> Path:
    """``bot/locales`` as installed (package data, also inside a wheel)."""
    return Path(str(resources.files("bot") / "locales"))


class Catalogues(I18n):
    """aiogram's ``I18n`` reading ``.po`` files directly (compiled to ``.mo`` in memory)."""

    def find_locales(self) -> dict[str, gettext_module.GNUTranslations]:
        found: dict[str, gettext_module.GNUTranslations] = {}
        for folder in sorted(self.path.iterdir()):
            po_path = folder / "LC_MESSAGES" / f"{self.domain}.po"
            if not po_path.is_file():
                continue
            with po_path.open("rb") as source:
                catalog = read_po(source, locale=folder.name, domain=self.domain)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
            compiled.seek(0)
            found[folder.name] = gettext_module.GNUTranslations(compiled)
        return found


@cache
def catalogues() -> Catalogues:
    """The process's catalogues (read-only data, loaded once)."""
    return Catalogues(path=locales_dir(), default_locale=DEFAULT_LOCALE, domain=DOMAIN)


def _(text: str) -> str:
    """``text`` (an English msgid) in the current locale."""
    return catalogues().gettext(text)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The plural form for ``n`` in the current locale (Russian has three)."""
    return catalogues().gettext(singular, plural, n)


def current_locale() -> str:
    return catalogues().current_locale


@contextmanager
def use_locale(locale: str | None) -> Iterator[None]:
    """Texts inside the block are in ``locale`` (the default one if unknown or None)."""
    with catalogues().use_locale(normalize(locale)):
        yield


def normalize(locale: str | None) -> str:
    """A supported locale for a stored value, or the default."""
    return locale if locale in LOCALES else DEFAULT_LOCALE


def locale_for_language_code(code: str | None) -> str:
    """The locale of a user who never chose one, from Telegram's ``language_code`` (``en-US``)."""
    if not code:
        return DEFAULT_LOCALE
    language = code.replace("_", "-").split("-")[0].lower()
    if language in LOCALES:
        return language
    return "ru" if language in RUSSIAN_READERS else "en"


# ---------------------------------------------------------------- numbers and durations (CLDR)


def number(value: float, *, digits: int = 1) -> str:
    """``12 345,6`` in Russian, ``12,345.6`` in English (always ``digits`` decimals)."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=current_locale())


def percentage(fraction: float, *, digits: int = 1) -> str:
    """``25,0%`` in Russian, ``25.0%`` in English."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return format_percent(fraction, format=pattern, locale=current_locale())


_UNITS = (
    (86400, "duration-day"),
    (3600, "duration-hour"),
    (60, "duration-minute"),
    (1, "duration-second"),
)


def duration(seconds: float | None) -> str:
    """A short duration with its two largest units, words and plurals from CLDR: ``8 sec``,
    ``1 min 20 sec``, ``2 hr 5 min``, ``3 days 4 hr`` in English (Russian likewise); ``—`` for
    None."""
    if seconds is None:
        return "—"
    total = max(0, math.ceil(seconds))
    parts: list[str] = []
    for size, unit in _UNITS:
        amount, total = divmod(total, size)
        if amount and len(parts) < 2:
            parts.append(format_unit(amount, unit, length="short", locale=current_locale()))
        elif parts:
            break  # "1 hr 0 min 5 sec" says no more than "1 hr"
    if not parts:
        parts.append(format_unit(0, "duration-second", length="short", locale=current_locale()))
    return " ".join(parts)
