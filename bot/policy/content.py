"""The operator's content policy on text: ``ContentPolicy.check(text) -> Verdict``.

One object for every caller — the request service (prompts, negative prompts, photo captions),
the worker (the translated prompt, just before rendering) — so a word list means the same thing
everywhere. ``BLOCKED_WORDS_FILE`` is read at start (a missing or unreadable file stops the start:
an operator who asked for a policy must not run without one) and read again when its
modification time or size changes, looked at no more than once a second; a file that turns
unreadable later keeps the last good list and is logged. Without the setting every text is
allowed. Thread-safe: the worker thread and the event loop both call :meth:`check`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.policy.words import Entry, WordMatcher, parse_entries

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 1.0
"""Seconds between two looks at the file's modification time."""


class PolicyFileError(Exception):
    """``BLOCKED_WORDS_FILE`` is missing or unreadable at start."""


@dataclass(frozen=True)
class Verdict:
    """What the policy says of a text. ``entry`` is the list line that matched (for logs: its
    line number and :attr:`Entry.key`, never the user's text)."""

    entry: Entry | None = None

    @property
    def blocked(self) -> bool:
        return self.entry is not None

    @property
    def allowed(self) -> bool:
        return self.entry is None

    def describe(self) -> str:
        """For logs: which list entry matched, without the words themselves."""
        if self.entry is None:
            return "allowed"
        return f"list line {self.entry.line} (entry {self.entry.key})"


ALLOWED = Verdict()


def _read(path: Path) -> WordMatcher:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(f"BLOCKED_WORDS_FILE {path}: {error}") from error
    return WordMatcher(parse_entries(text.splitlines()))


class ContentPolicy:
    """Blocked words of ``path`` (None: no policy, everything allowed)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        reload_interval: float = RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.reload_interval = reload_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._matcher = WordMatcher(())
        self._stamp: tuple[int, int] | None = None
        self._looked = -float("inf")
        if self.path is not None:
            self._stamp = self._file_stamp()
            if self._stamp is None:
                raise PolicyFileError(f"BLOCKED_WORDS_FILE {self.path}: no such file")
            self._matcher = _read(self.path)
            self._looked = self.clock()
            log.info("content policy: %d blocked entries from %s", len(self._matcher), self.path)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    @property
    def entries(self) -> int:
        return len(self._matcher)

    def check(self, text: str | None) -> Verdict:
        """Whether ``text`` may be rendered: the first list entry found in it, if any."""
        if not text or self.path is None:
            return ALLOWED
        self._reload_if_changed()
        entry = self._matcher.match(text)
        return Verdict(entry) if entry is not None else ALLOWED

    def check_all(self, *texts: str | None) -> Verdict:
        """The first blocked verdict among ``texts`` (prompt, negative prompt, caption…)."""
        for text in texts:
            verdict = self.check(text)
            if verdict.blocked:
                return verdict
        return ALLOWED

    # ------------------------------------------------------------ reloading

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _reload_if_changed(self) -> None:
        now = self.clock()
        if now - self._looked < self.reload_interval:
            return
        with self._lock:
            if now - self._looked < self.reload_interval:
                return
            self._looked = now
            stamp = self._file_stamp()
            if stamp is None:
                if self._stamp is not None:
                    log.warning("content policy: %s is gone; keeping the last list", self.path)
                self._stamp = None
                return
            if stamp == self._stamp:
                return
            try:
                matcher = _read(self.path)  # type: ignore[arg-type]
            except PolicyFileError as error:
                log.warning("content policy: %s; keeping the last list", error)
                return
            self._matcher, self._stamp = matcher, stamp
            log.info("content policy: reloaded, %d blocked entries", len(matcher))
