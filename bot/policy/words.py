"""Blocked words: the operator's list file, and matching it across word forms.

Why stems and not substrings: Russian inflects (*vzryv*, *vzryvy*, *vzryvom*: explosion), so an exact
word list misses most forms, while a substring test blocks innocent words that share letters
(*mat* in *material*). Each word is reduced to its Snowball stem — the Russian stemmer for
Cyrillic words, the English one for Latin words — and an entry matches when its stems appear
in the text as consecutive words. *vzryv* then blocks *vzryvy* and *vzryvom* but not
*vzryvchatka* (explosives, stem *vzryvchatk*): where the stemmer tells two words apart, so does the list;
an entry ending in ``*`` is a prefix for the cases where the operator wants more.

Before stemming, text is normalised the same way for the list and for prompts: Unicode NFKC
(full-width letters), case folded, yo → ye (U+0451 → U+0435), invisible characters (soft hyphen, zero-width
spaces and joiners) removed, punctuation treated as a word boundary, and in a word that mixes
Cyrillic and Latin letters the Latin look-alikes (``a``, ``o``, ``p``, ``c``…) read as Cyrillic.

File format (``BLOCKED_WORDS_FILE``, UTF-8): one entry per line, a word or a phrase of several
words; ``#`` starts a comment (a whole line or the rest of one); blank lines are ignored; a word
ending in ``*`` matches every word that starts with it (``vzryvch*``). Russian and English entries
share one file: each word's alphabet picks its stemmer. (Russian examples here are transliterated:
the code holds no Cyrillic outside the catalogues.)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
"""Characters that render as nothing: removed, so they cannot split a word in two."""
YO = str.maketrans("\u0451", "\u0435")
"""yo → ye (U+0451 → U+0435): Russian writes both for the same word."""
LOOKALIKES = str.maketrans(
    "aeopcxykmthb", "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u043a\u043c\u0442\u043d\u0432"
)
"""Latin letters that look like Cyrillic ones (lower case), read as Cyrillic in a mixed word."""
WORD = re.compile(r"[^\W_]+\*?")
CYRILLIC = re.compile("[\u0400-\u04ff]")
LATIN = re.compile("[a-z]")


@lru_cache(maxsize=2)
def _stemmer(language: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(language)


def normalise(text: str) -> str:
    """Text as the matcher reads it: NFKC, lower case, yo → ye, invisible characters gone."""
    return unicodedata.normalize("NFKC", text).translate(INVISIBLE).casefold().translate(YO)


def _fold_mixed(word: str) -> str:
    """A word mixing alphabets (a Cyrillic word typed with a Latin ``p``) read as Cyrillic."""
    if CYRILLIC.search(word) and LATIN.search(word):
        return word.translate(LOOKALIKES)
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of one normalised word (Russian stemmer for Cyrillic, English else)."""
    language = "russian" if CYRILLIC.search(word) else "english"
    return _stemmer(language).stemWord(word)


def words(text: str, *, prefixes: bool = False) -> list[str]:
    """The normalised words of ``text`` (punctuation and spaces are boundaries); with
    ``prefixes`` (a list file) a word keeps a trailing ``*``."""
    found = [_fold_mixed(w) for w in WORD.findall(normalise(text))]
    return found if prefixes else [w.rstrip("*") for w in found]


def stems(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


@dataclass(frozen=True)
class Entry:
    """One line of the list: what it matches and where it is, never needed in a log as text."""

    line: int
    parts: tuple[tuple[str, bool], ...]
    """Per word: its stem (or its prefix) and whether it is a prefix (``*``)."""

    @property
    def key(self) -> str:
        """A short stable id of the entry for logs: the operator finds it by line number, a log
        reader learns nothing of the word."""
        text = " ".join(p + ("*" if prefix else "") for p, prefix in self.parts)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def parse_entries(lines: Iterable[str]) -> list[Entry]:
    """Entries of a list file's lines (comments and blank lines skipped)."""
    entries = []
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0]
        parts = []
        for word in words(text, prefixes=True):
            if word.endswith("*"):
                parts.append((word[:-1], True))
            else:
                parts.append((stem(word), False))
        if parts:
            entries.append(Entry(number, tuple(parts)))
    return entries


class WordMatcher:
    """Finds the first entry whose words appear, in order and consecutively, in a text."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self._by_stem: dict[str, list[Entry]] = {}
        self._prefixed: list[Entry] = []
        for entry in self.entries:
            head, prefix = entry.parts[0]
            if prefix:
                self._prefixed.append(entry)
            else:
                self._by_stem.setdefault(head, []).append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, text: str) -> Entry | None:
        tokens = words(text)
        if not tokens or not self.entries:
            return None
        token_stems = [stem(w) for w in tokens]
        for index in range(len(tokens)):
            candidates = self._by_stem.get(token_stems[index], []) + self._prefixed
            for entry in candidates:
                if _matches_at(entry, tokens, token_stems, index):
                    return entry
        return None


def _matches_at(entry: Entry, tokens: list[str], token_stems: list[str], start: int) -> bool:
    if start + len(entry.parts) > len(tokens):
        return False
    for offset, (part, prefix) in enumerate(entry.parts):
        i = start + offset
        if prefix:
            if not tokens[i].startswith(part):
                return False
        elif token_stems[i] != part:
            return False
    return True
