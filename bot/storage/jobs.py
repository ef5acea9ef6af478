"""The durable job queue: every request is a row in ``jobs`` before the user hears "queued".

State machine (docs/architecture.md)::

    queued → running → generated → delivered
    queued | running → cancelled
    running | generated → failed        (generated: the stored video cannot be sent, e.g. too big;
                                         running: also refused at claim time, ``refuse_claimed``)
    generated → undeliverable           (the user blocked the bot)
    at start: running → queued (attempt + 1) or → failed after ``max_attempts``
    lease expired (reaper): running → queued, or → failed after ``max_attempts``
    graceful worker stop (release): running → queued

Several worker processes share the queue (``python -m bot.worker``): :meth:`JobStore.claim` gives
the claiming worker a *lease* (``lease_until``, from the database clock: ``bot/storage/clock.py``)
that its :meth:`JobStore.heartbeat` renews; the pair (job id, ``attempts``) is the *fence* every
worker write carries (``attempt=``), so a worker whose lease expired and whose job was claimed
again can never overwrite the newer attempt; :meth:`JobStore.reap` requeues expired leases.

The queue is fair, not first come first served: :data:`QUEUE_ORDER_SQL` is the one order in which
jobs are claimed and in which positions are shown (:meth:`JobStore.queue_order`).

Every transition is one conditional ``UPDATE … WHERE status IN (…)``, atomic without an explicit
transaction, and reports whether it happened: a job cancelled while it rendered can never become
``generated``, and a delivered job can never be delivered (sent) again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from bot.storage.clock import now_sql
from bot.storage.db import transaction
from bot.storage.engine import Database, Row, dialect_of, lock_key
from pipeline.options import GenerationOptions

log = logging.getLogger(__name__)

CANCEL_CHANNEL = "t2v_cancel"
"""PostgreSQL ``NOTIFY`` channel of cancels of running jobs (payload: the job id); a wake-up
hint for the rendering worker (bot/worker/cancels.py), never the marker itself."""


class JobStatus:
    """Job states as stored in ``jobs.status`` (plain strings, so rows compare with ``==``)."""

    QUEUED = "queued"
    RUNNING = "running"
    GENERATED = "generated"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNDELIVERABLE = "undeliverable"

    ALL: tuple[str, ...] = (
        QUEUED,
        RUNNING,
        GENERATED,
        DELIVERED,
        CANCELLED,
        FAILED,
        UNDELIVERABLE,
    )
    ACTIVE: tuple[str, ...] = (QUEUED, RUNNING)  # count against per-user limits
    FINAL: tuple[str, ...] = (DELIVERED, CANCELLED, FAILED, UNDELIVERABLE)


class Transition(NamedTuple):
    """One operation of the state machine: the states it may start from and where it leads."""

    sources: tuple[str, ...]
    target: str


TRANSITIONS: dict[str, Transition] = {
    "claim_next": Transition((JobStatus.QUEUED,), JobStatus.RUNNING),
    "refuse_claimed": Transition((JobStatus.RUNNING,), JobStatus.FAILED),
    "mark_generated": Transition((JobStatus.RUNNING,), JobStatus.GENERATED),
    "mark_delivered": Transition((JobStatus.GENERATED,), JobStatus.DELIVERED),
    "mark_failed": Transition((JobStatus.RUNNING, JobStatus.GENERATED), JobStatus.FAILED),
    "mark_undeliverable": Transition((JobStatus.GENERATED,), JobStatus.UNDELIVERABLE),
    "cancel": Transition((JobStatus.QUEUED, JobStatus.RUNNING), JobStatus.CANCELLED),
    "cancel_user_queued": Transition((JobStatus.QUEUED,), JobStatus.CANCELLED),
    "requeue": Transition((JobStatus.RUNNING,), JobStatus.QUEUED),
}
"""The allowed transitions, defined once: every store method named here changes a job only
from ``sources`` (one guarded ``UPDATE … WHERE status IN (…)``) and the contract tests
(``tests/storage/``) check every state against this table on both engines. ``requeue`` is
:meth:`JobStore.recover`'s (or a reaper's) running → queued."""


class JobSource:
    REQUEST = "request"
    REPEAT = "repeat"
    SHARE = "share"
    """Rendered from someone's share link (``/start <token>``) for the person who opened it."""


class FailReason:
    """Why a job ended ``failed`` or ``undeliverable``, stored in ``jobs.error`` as a code; the
    user's text is written from it in their language (``bot/texts/status.py``)."""

    GENERATION = "generation"
    OUT_OF_MEMORY = "out_of_memory"
    TOO_LARGE = "too_large"
    INTERRUPTED = "interrupted"
    """Interrupted by restarts ``MAX_ATTEMPTS`` times."""
    DELIVERY = "delivery"
    VIDEO_MISSING = "video_missing"
    BLOCKED = "blocked"
    """The user blocked the bot (``undeliverable``)."""
    CONTENT_POLICY = "content_policy"
    """The prompt sent to the model (its translation) matched ``BLOCKED_WORDS_FILE`` in the
    worker, before rendering (``failed``, not charged: ``JobStore.refuse_claimed``)."""
    WITHHELD = "withheld"
    """``NSFW_MODEL`` flagged the finished video: never sent, its files deleted."""
    NO_IMAGE_MODEL = "no_image_model"
    """A photo job claimed where no image-to-video model is loaded (``I2V_MODEL`` removed)."""
    OVER_LIMIT = "over_limit"
    """Claimed, but the current limits no longer allow its options (the operator lowered
    ``MAX_*`` while it waited): stored as ``over_limit:<option>[:<maximum>]`` (:meth:`over_limit`)."""

    @classmethod
    def over_limit(cls, option: str, maximum: int | None = None) -> str:
        """The stored code of a job refused at claim time: the option and its current maximum."""
        return f"{cls.OVER_LIMIT}:{option}" + (f":{maximum}" if maximum is not None else "")

    @classmethod
    def parse_over_limit(cls, code: str | None) -> tuple[str, int | None] | None:
        """``(option, maximum)`` of an :meth:`over_limit` code; None for any other code."""
        if not code or not code.startswith(cls.OVER_LIMIT + ":"):
            return None
        _, option, *rest = code.split(":")
        maximum = int(rest[0]) if rest and rest[0].isdigit() else None
        return option, maximum


_OPTION_FIELDS = tuple(f.name for f in fields(GenerationOptions))

QUEUE_ORDER_SQL = (
    "WITH waiting AS ("
    " SELECT jobs.*, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id) AS turn,"
    " MIN(id) OVER (PARTITION BY user_id) AS first_id FROM jobs WHERE status = ?),"
    " rendered AS ("
    " SELECT user_id, MAX(started_at) AS last_start FROM jobs"
    " WHERE started_at IS NOT NULL AND user_id IN (SELECT user_id FROM waiting)"
    " GROUP BY user_id)"
    " SELECT {columns} FROM waiting AS w LEFT JOIN rendered AS r ON r.user_id = w.user_id"
    " ORDER BY w.turn, CASE WHEN r.last_start IS NULL THEN 0 ELSE 1 END, r.last_start,"
    " w.first_id"
)
"""The fair queue, in one statement (``{columns}``: ``w.id`` or ``w.*``; parameters:
:data:`QUEUE_ORDER_PARAMS`). Round-robin by user: every user with queued jobs gets one render per
round (``turn`` = 1 for each user's oldest queued job, 2 for the next…); within a round, users go
in the order of the start of their latest render — never rendered first, then the one who has
waited longest — and ties go to the user whose oldest queued job is oldest. Claiming a user's job
makes it their latest render, so the next round keeps this round's order: the whole list is the
order in which :meth:`JobStore.claim_next` will claim the jobs if nothing else arrives.

Plain SQL with window functions (``ROW_NUMBER``, ``MIN … OVER``) and CTEs: the same text runs on
SQLite ≥ 3.25 and PostgreSQL (placeholders aside). Jobs requeued at start and jobs refused at claim
time have ``started_at`` cleared, so they are not their user's turn."""
QUEUE_ORDER_PARAMS: tuple[str, ...] = (JobStatus.QUEUED,)

CLAIM_SQL = (
    "SELECT q.id FROM jobs AS q WHERE q.status = '" + JobStatus.QUEUED + "' AND NOT EXISTS ("
    "SELECT 1 FROM jobs AS o WHERE o.user_id = q.user_id AND o.status = '"
    + JobStatus.QUEUED
    + "' AND o.id < q.id) ORDER BY q.queue_key, q.id"
)
"""The claim's choice, first row first (no parameters; the caller adds ``LIMIT 1``): each waiting
user's oldest queued job (``turn`` 1 of :data:`QUEUE_ORDER_SQL`) ordered by ``queue_key`` — its
user's latest start, ``COALESCE(MAX(started_at), -1)``, kept on every queued job by the triggers
of migration 0013 — then by id: :data:`QUEUE_ORDER_SQL`'s keys within a turn (never rendered
first, then the oldest latest render, ties by the oldest queued job), and turn 1 comes before
turn 2. A walk of the partial index ``jobs_claim_order`` whose first row is (almost always) the
answer, and one probe of ``jobs_user_queued`` per row: constant time at any queue length. The
status is a literal so that both engines may use the partial indexes."""

CHARGED_SQL = "(started_at IS NOT NULL OR status NOT IN (?, ?))"
"""The jobs a daily budget counts: all but those that ended without ever starting to render
(cancelled while queued, refused at claim time). A job that ran counts whatever became of it."""
CHARGED_PARAMS: tuple[str, ...] = (JobStatus.CANCELLED, JobStatus.FAILED)


def options_to_json(options: GenerationOptions) -> str:
    return json.dumps(asdict(options), ensure_ascii=False)


def options_from_json(text: str, prompt: str = "") -> GenerationOptions:
    """Parse stored options; unknown keys (from a newer version) are ignored, and a row of an
    older version that asked for ``"fast": true`` keeps its tier."""
    data = json.loads(text)
    data.setdefault("prompt", prompt)
    if data.get("fast") is True and "quality" not in data:
        data["quality"] = "fast"
    return GenerationOptions(**{k: v for k, v in data.items() if k in _OPTION_FIELDS})


@dataclass(frozen=True)
class Job:
    """One row of ``jobs``, with JSON columns decoded."""

    id: int
    user_id: int
    chat_id: int
    request_message_id: int | None
    status_message_id: int | None
    status: str
    prompt: str
    prompt_en: str | None
    options: GenerationOptions
    translate: bool
    attempts: int
    error: str | None
    created_at: float
    started_at: float | None
    generated_at: float | None
    finished_at: float | None
    gen_seconds: float | None
    video_path: str | None
    video_meta: dict[str, Any] | None
    file_id: str | None
    result_message_id: int | None
    progress: float
    source: str
    update_id: int | None = None  # the Telegram update that created it (idempotent replay)
    locale: str | None = None  # the language the requester reads (status, caption, errors)
    cost: float = 1.0  # GPU cost in ordinary videos (bot/services/cost.py), fixed at admission
    number: int = 0
    """The requester's own number for it (``#3``: their third job), shown in every message."""
    status_media: str | None = None
    """What the status message is: None = text, ``photo`` = a photo with the status as caption
    (the live preview; the video replaces it at delivery)."""
    improve: bool = False
    """Its English prompt comes from the prompt improver (migration 0009): improved by the
    worker when ``prompt_en`` is empty, else chosen by the user in advance."""
    worker_id: str | None = None
    """The worker that claimed it last (None: never claimed, or claimed without a lease)."""
    lease_until: float | None = None
    """When that worker's lease ends, database clock (None: requeued, or no lease)."""
    heartbeat_at: float | None = None
    stage: str | None = None
    """Progress as the last heartbeat carried it: a ``pipeline.progress.Stage`` value, the
    step and steps of that stage, seconds since the render began."""
    step: int | None = None
    steps: int | None = None
    elapsed: float | None = None

    @property
    def is_active(self) -> bool:
        return self.status in JobStatus.ACTIVE

    @property
    def is_final(self) -> bool:
        return self.status in JobStatus.FINAL

    @classmethod
    def from_row(cls, row: Row) -> Job:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            chat_id=row["chat_id"],
            request_message_id=row["request_message_id"],
            status_message_id=row["status_message_id"],
            status=row["status"],
            prompt=row["prompt"],
            prompt_en=row["prompt_en"],
            options=options_from_json(row["options"], row["prompt"]),
            translate=bool(row["translate"]),
            attempts=row["attempts"],
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            generated_at=row["generated_at"],
            finished_at=row["finished_at"],
            gen_seconds=row["gen_seconds"],
            video_path=row["video_path"],
            video_meta=json.loads(row["video_meta"]) if row["video_meta"] else None,
            file_id=row["file_id"],
            result_message_id=row["result_message_id"],
            progress=row["progress"],
            source=row["source"],
            update_id=row["update_id"],
            locale=row["locale"],
            cost=row["cost"],
            number=row["number"] or row["id"],
            status_media=row["status_media"],
            improve=bool(row["improve"]),
            worker_id=row["worker_id"],
            lease_until=row["lease_until"],
            heartbeat_at=row["heartbeat_at"],
            stage=row["stage"],
            step=row["step"],
            steps=row["steps"],
            elapsed=row["elapsed"],
        )


@dataclass(frozen=True)
class Recovery:
    """What :meth:`JobStore.recover` found at start."""

    requeued: list[Job]
    failed: list[Job]
    undelivered: list[Job]  # ``generated``: send the stored file again, never regenerate


@dataclass(frozen=True)
class Reaped:
    """What :meth:`JobStore.reap` did: jobs whose lease expired, requeued or failed."""

    requeued: list[Job]
    failed: list[Job]


class Beat:
    """What a :meth:`JobStore.heartbeat` found (plain strings)."""

    OK = "ok"
    """The lease is renewed: go on rendering."""
    CANCELLED = "cancelled"
    """The job was cancelled: stop within one step, write nothing more."""
    LOST = "lost"
    """The lease is gone (expired and requeued, claimed by another worker, finished): stop and
    write nothing more."""


LEASE_CLEARED_SQL = (
    "worker_id = NULL, lease_until = NULL, heartbeat_at = NULL,"
    " stage = NULL, step = NULL, steps = NULL, elapsed = NULL"
)
"""The assignments that take a job back from its worker (requeue, release)."""


class FinishedRun(NamedTuple):
    """A generated job as the ETA sees it (:meth:`JobStore.recent_runs`)."""

    seconds: float  # gen_seconds: from claim to generated
    options: GenerationOptions


class HourBucket(NamedTuple):
    hour_ts: float  # start of the hour, UNIX seconds
    jobs: int  # jobs created in that hour
    mean_gen_seconds: float | None  # over those that finished generating


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _fence(attempt: int | None) -> tuple[str, tuple[Any, ...]]:
    """The ``AND attempts = ?`` of a fenced worker write (nothing when ``attempt`` is None: the
    Telegram side's own writes, and tests of the state machine alone)."""
    return (" AND attempts = ?", (attempt,)) if attempt is not None else ("", ())


def _sorted_jobs(rows: Iterable[Row]) -> list[Job]:
    return sorted((Job.from_row(row) for row in rows), key=lambda job: job.id)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class JobStore:
    """All reads and writes of ``jobs``. ``clock`` is injectable so tests control time."""

    def __init__(self, conn: Database, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock
        self.dialect = dialect_of(conn)

    # ------------------------------------------------------------ helpers

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Job | None:
        rows = await self.conn.execute_fetchall(sql, params)
        return Job.from_row(rows[0]) if rows else None

    async def _many(self, sql: str, params: Sequence[Any] = ()) -> list[Job]:
        rows = await self.conn.execute_fetchall(sql, params)
        return [Job.from_row(row) for row in rows]

    async def _changed(self, sql: str, params: Sequence[Any]) -> bool:
        async with self.conn.execute(sql, params) as cursor:
            return cursor.rowcount > 0

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.conn.execute_fetchall(sql, params)
        return rows[0][0] if rows else None

    # ------------------------------------------------------------ create / read

    async def create(
        self,
        user_id: int,
        chat_id: int,
        request_message_id: int | None,
        prompt: str,
        options: GenerationOptions,
        translate: bool = True,
        source: str = JobSource.REQUEST,
        update_id: int | None = None,
        locale: str | None = None,
        cost: float = 1.0,
        *,
        prompt_en: str | None = None,
        improve: bool = False,
    ) -> Job:
        """Persist a new ``queued`` job (committed when this returns).

        ``prompt_en`` is the English prompt when it is known already (chosen by the user: the
        worker then neither translates nor improves); ``improve`` marks a job whose prompt comes
        from the prompt improver.

        ``cost`` is its GPU cost in ordinary videos (``bot/services/cost.py``), summed by the
        daily budgets (:meth:`cost_since`).

        ``update_id`` names the Telegram update that asked for it: a second create for the same
        update (a replay after a crash, ``bot/telegram/updates.py``) inserts nothing and returns the job
        the first one created — compare ``created_at``/``status_message_id`` to tell.
        """
        serialize = self.dialect.serialize_sql()
        if serialize is None:
            job = await self._insert(
                user_id, chat_id, request_message_id, prompt, options, translate, source,
                update_id, locale, cost, prompt_en, improve,
            )  # fmt: skip
        else:  # PostgreSQL: two front ends must not give one user's two jobs the same number
            async with transaction(self.conn):
                await self.conn.execute(serialize, (lock_key("jobs.number", user_id),))
                job = await self._insert(
                    user_id, chat_id, request_message_id, prompt, options, translate, source,
                    update_id, locale, cost, prompt_en, improve,
                )  # fmt: skip
        if job is None and update_id is not None:
            job = await self.by_update_id(update_id)
        assert job is not None
        return job

    async def _insert(
        self,
        user_id: int,
        chat_id: int,
        request_message_id: int | None,
        prompt: str,
        options: GenerationOptions,
        translate: bool,
        source: str,
        update_id: int | None,
        locale: str | None,
        cost: float,
        prompt_en: str | None,
        improve: bool,
    ) -> Job | None:
        """The ``INSERT`` of :meth:`create`: None when ``update_id`` already made a job."""
        return await self._one(
            "INSERT INTO jobs (user_id, chat_id, request_message_id, status, prompt, options,"
            " translate, created_at, source, update_id, locale, cost, prompt_en, improve, number)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " (SELECT COALESCE(MAX(number), 0) + 1 FROM jobs WHERE user_id = ?))"
            " ON CONFLICT DO NOTHING RETURNING *",
            (
                user_id,
                chat_id,
                request_message_id,
                JobStatus.QUEUED,
                prompt,
                options_to_json(options),
                int(translate),
                self.clock(),
                source,
                update_id,
                locale,
                float(cost),
                prompt_en,
                int(improve),
                user_id,
            ),
        )

    async def by_update_id(self, update_id: int) -> Job | None:
        """The job created by Telegram update ``update_id``, if any."""
        return await self._one("SELECT * FROM jobs WHERE update_id = ?", (update_id,))

    async def by_number(self, user_id: int, number: int) -> Job | None:
        """The job ``user_id`` knows as ``#number`` (numbers count each requester's jobs)."""
        return await self._one(
            "SELECT * FROM jobs WHERE user_id = ? AND number = ?", (user_id, number)
        )

    async def get(self, job_id: int) -> Job | None:
        return await self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def set_status_message(
        self, job_id: int, message_id: int, media: str | None = None
    ) -> bool:
        """Store the status message and its kind (``media``: None = text, ``photo``)."""
        return await self._changed(
            "UPDATE jobs SET status_message_id = ?, status_media = ? WHERE id = ?",
            (message_id, media, job_id),
        )

    async def set_prompt_en(self, job_id: int, text: str, *, attempt: int | None = None) -> bool:
        """Store the English prompt; fenced by ``attempt`` (a stale worker's changes nothing)."""
        fence, fence_params = _fence(attempt)
        return await self._changed(
            f"UPDATE jobs SET prompt_en = ? WHERE id = ?{fence}", (text, job_id, *fence_params)
        )

    async def set_progress(
        self, job_id: int, fraction: float, *, attempt: int | None = None
    ) -> bool:
        """Store progress (clamped to 0–1) of a running job; False once it is no longer running."""
        fraction = min(1.0, max(0.0, float(fraction)))
        fence, fence_params = _fence(attempt)
        return await self._changed(
            f"UPDATE jobs SET progress = ? WHERE id = ? AND status = ?{fence}",
            (fraction, job_id, JobStatus.RUNNING, *fence_params),
        )

    # ------------------------------------------------------------ transitions

    async def claim_next(self) -> Job | None:
        """:meth:`claim` without a worker or a lease (the state machine alone)."""
        return await self.claim(None, None)

    async def claim(self, worker_id: str | None, lease_seconds: float | None) -> Job | None:
        """Atomically move the first job of :meth:`queue_order` to ``running`` (the oldest job
        of the user who has waited longest without a render) for ``worker_id``, leased for
        ``lease_seconds`` from the database clock; None when the queue is empty.

        ``attempts`` grows by one: the returned job's ``(id, attempts)`` is the fence every
        later write of this worker passes as ``attempt=``. One statement, so two loops (or
        processes) can never claim the same job: the loser of a race finds the row no longer
        ``queued``, changes nothing and gets None (its next look claims the following job).
        Without ``lease_seconds`` the job has no lease and no reaper takes it back (only the
        start-up :meth:`recover` of the process that claimed it).
        """
        now = now_sql(self.conn)
        return await self._one(
            "UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1, progress = 0,"
            f" worker_id = ?, lease_until = {now} + ?, heartbeat_at = {now},"
            " stage = NULL, step = NULL, steps = NULL, elapsed = NULL"
            f" WHERE id = ({self._next_claim_sql()})"
            " AND status = ? RETURNING *",
            (JobStatus.RUNNING, self.clock(), worker_id, lease_seconds, JobStatus.QUEUED),
        )

    def _next_claim_sql(self) -> str:
        """The id of the job to claim (no parameters): the first of :data:`QUEUE_ORDER_SQL`, read
        from the maintained key (:data:`CLAIM_SQL`). On SQLite one writer at a time makes the
        plain query safe; :class:`PostgresJobStore` locks the row it picks."""
        return f"{CLAIM_SQL} LIMIT 1"

    async def heartbeat(
        self,
        job_id: int,
        attempt: int,
        worker_id: str,
        lease_seconds: float,
        *,
        stage: str | None = None,
        step: int | None = None,
        steps: int | None = None,
        progress: float | None = None,
        elapsed: float | None = None,
    ) -> str:
        """Renew ``worker_id``'s lease on attempt ``attempt`` of ``job_id`` for ``lease_seconds``
        (database clock) and store its progress (None keeps the stored value). Returns a
        :class:`Beat`: ``ok`` (go on), ``cancelled`` (the row says so: stop within one step),
        ``lost`` (another attempt owns the job, or it ended: stop, write nothing more)."""
        now = now_sql(self.conn)
        if progress is not None:
            progress = min(1.0, max(0.0, float(progress)))
        rows = await self.conn.execute_fetchall(
            f"UPDATE jobs SET lease_until = {now} + ?, heartbeat_at = {now},"
            " stage = COALESCE(?, stage), step = COALESCE(?, step), steps = COALESCE(?, steps),"
            " progress = COALESCE(?, progress), elapsed = COALESCE(?, elapsed)"
            " WHERE id = ? AND attempts = ? AND worker_id = ? AND status = ? RETURNING id",
            (
                lease_seconds,
                stage,
                step,
                steps,
                progress,
                elapsed,
                job_id,
                attempt,
                worker_id,
                JobStatus.RUNNING,
            ),
        )
        if rows:
            return Beat.OK
        job = await self.get(job_id)
        if job is not None and job.attempts == attempt and job.status == JobStatus.CANCELLED:
            return Beat.CANCELLED
        return Beat.LOST

    async def release(self, job_id: int, attempt: int) -> bool:
        """running → queued at once: a worker stopping gracefully (SIGTERM) gives its job back
        so another worker takes it now, not after the lease. The attempt stays counted (as a
        restart's does). Fenced: False if ``attempt`` is no longer the job's."""
        return await self._changed(
            f"UPDATE jobs SET status = ?, progress = 0, started_at = NULL, {LEASE_CLEARED_SQL}"
            " WHERE id = ? AND status = ? AND attempts = ?",
            (JobStatus.QUEUED, job_id, JobStatus.RUNNING, attempt),
        )

    async def reap(self, max_attempts: int = 3) -> Reaped:
        """Take back every running job whose lease expired (database clock): requeue it, or fail
        it with ``FailReason.INTERRUPTED`` once it was claimed ``max_attempts`` times. Idempotent
        and safe in any process, any number of times: a renewed lease is never touched, and a
        job is reaped once (it is no longer ``running`` afterwards). Jobs without a lease
        (:meth:`claim_next`) are left to :meth:`recover`."""
        now = now_sql(self.conn)
        return await self._take_back(
            f"lease_until IS NOT NULL AND lease_until < {now}", (), max_attempts
        )

    async def take_back(self, worker_id: str, max_attempts: int = 3) -> Reaped:
        """A worker starting again under the same ``WORKER_ID`` takes back what it was running
        when it stopped (crash, kill), at once instead of after the lease: requeued, or failed
        after ``max_attempts`` claims. Other workers' jobs are never touched."""
        return await self._take_back("worker_id = ?", (worker_id,), max_attempts)

    async def _take_back(self, where: str, params: tuple[Any, ...], max_attempts: int) -> Reaped:
        async with transaction(self.conn):
            failed_rows = await self.conn.execute_fetchall(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ?, lease_until = NULL"
                f" WHERE status = ? AND {where} AND attempts >= ? RETURNING *",
                (
                    JobStatus.FAILED,
                    FailReason.INTERRUPTED,
                    self.clock(),
                    JobStatus.RUNNING,
                    *params,
                    max_attempts,
                ),
            )
            requeued_rows = await self.conn.execute_fetchall(
                f"UPDATE jobs SET status = ?, progress = 0, started_at = NULL, {LEASE_CLEARED_SQL}"
                f" WHERE status = ? AND {where} RETURNING *",
                (JobStatus.QUEUED, JobStatus.RUNNING, *params),
            )
        return Reaped(_sorted_jobs(requeued_rows), _sorted_jobs(failed_rows))

    async def refuse_claimed(self, job_id: int, reason: str, *, attempt: int | None = None) -> bool:
        """running → failed *before* rendering began: the current limits no longer allow the
        job's options (``reason``: :meth:`FailReason.over_limit`). ``started_at`` is cleared, so
        it is not charged to the daily budgets and is not its user's turn in the fair queue.
        Fenced by ``attempt``."""
        fence, fence_params = _fence(attempt)
        return await self._changed(
            "UPDATE jobs SET status = ?, error = ?, finished_at = ?, started_at = NULL"
            f" WHERE id = ? AND status = ?{fence}",
            (JobStatus.FAILED, reason, self.clock(), job_id, JobStatus.RUNNING, *fence_params),
        )

    async def mark_generated(
        self,
        job_id: int,
        video_path: str,
        video_meta: dict[str, Any],
        gen_seconds: float,
        *,
        attempt: int | None = None,
    ) -> bool:
        """running → generated. False if the job was cancelled (or anything else) meanwhile, or
        ``attempt`` is no longer the job's (the fence: a stale worker's video is never used)."""
        fence, fence_params = _fence(attempt)
        return await self._changed(
            "UPDATE jobs SET status = ?, video_path = ?, video_meta = ?, gen_seconds = ?,"
            f" generated_at = ?, progress = 1, lease_until = NULL WHERE id = ? AND status = ?{fence}",
            (
                JobStatus.GENERATED,
                str(video_path),
                json.dumps(video_meta, ensure_ascii=False, default=str),
                gen_seconds,
                self.clock(),
                job_id,
                JobStatus.RUNNING,
                *fence_params,
            ),
        )

    async def mark_delivered(
        self, job_id: int, file_id: str | None, result_message_id: int
    ) -> bool:
        """generated → delivered. False if it was already delivered: never send a video twice."""
        return await self._changed(
            "UPDATE jobs SET status = ?, file_id = ?, result_message_id = ?, finished_at = ?"
            " WHERE id = ? AND status = ?",
            (
                JobStatus.DELIVERED,
                file_id,
                result_message_id,
                self.clock(),
                job_id,
                JobStatus.GENERATED,
            ),
        )

    async def mark_failed(self, job_id: int, reason: str, *, attempt: int | None = None) -> bool:
        """running | generated → failed; ``reason`` is a :class:`FailReason` code. Fenced by
        ``attempt`` (a worker's failure of a job another attempt owns changes nothing)."""
        return await self._transition(job_id, *TRANSITIONS["mark_failed"], reason, attempt)

    async def mark_undeliverable(self, job_id: int, reason: str = FailReason.BLOCKED) -> bool:
        """generated → undeliverable (e.g. 403: the user blocked the bot)."""
        return await self._transition(job_id, *TRANSITIONS["mark_undeliverable"], reason)

    async def _transition(
        self,
        job_id: int,
        sources: Sequence[str],
        target: str,
        error: str | None,
        attempt: int | None = None,
    ) -> bool:
        fence, fence_params = _fence(attempt)
        return await self._changed(
            f"UPDATE jobs SET status = ?, error = ?, finished_at = ?, lease_until = NULL"
            f" WHERE id = ? AND status IN ({_placeholders(sources)}){fence}",
            (target, error, self.clock(), job_id, *sources, *fence_params),
        )

    async def cancel(self, job_id: int) -> Job | None:
        """queued | running → cancelled. Returns the job as it was (so the caller knows whether it
        was running and must stop the worker), or None if it was not cancellable."""
        for _ in range(5):  # optimistic: retry if the status moved between the read and the write
            job = await self.get(job_id)
            if job is None or job.status not in JobStatus.ACTIVE:
                return None
            if await self._changed(
                "UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
                (JobStatus.CANCELLED, self.clock(), job_id, job.status),
            ):
                return job
        return None

    async def cancel_user_queued(self, user_id: int) -> list[Job]:
        """Cancel all of a user's queued jobs (on ban); returns them as they are now (cancelled)."""
        jobs = await self._many(
            "UPDATE jobs SET status = ?, finished_at = ? WHERE user_id = ? AND status = ?"
            " RETURNING *",
            (JobStatus.CANCELLED, self.clock(), user_id, JobStatus.QUEUED),
        )
        return sorted(jobs, key=lambda job: job.id)

    async def recover(self, max_attempts: int = 3, worker_id: str | None = None) -> Recovery:
        """At start: requeue the jobs this process was rendering when it stopped (or fail those
        interrupted ``max_attempts`` times) and list ``generated`` jobs whose video must be sent
        again. ``attempts`` is not reset.

        "This process's" jobs are those claimed without a worker (:meth:`claim_next`) and those
        of ``worker_id`` (a restarted worker with a stable ``WORKER_ID``, e.g. the embedded one
        of ``python -m bot``): they resume at once instead of after ``LEASE_SECONDS``. Jobs
        leased by other workers are never touched here (the reaper takes back expired ones)."""
        now = self.clock()
        mine = "status = ? AND (worker_id IS NULL OR worker_id = ?)"
        async with transaction(self.conn):
            failed_rows = await self.conn.execute_fetchall(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ?, lease_until = NULL"
                f" WHERE {mine} AND attempts >= ? RETURNING *",
                (
                    JobStatus.FAILED,
                    FailReason.INTERRUPTED,
                    now,
                    JobStatus.RUNNING,
                    worker_id,
                    max_attempts,
                ),
            )
            # started_at is cleared: in the fair queue the interrupted job waits as one never
            # started, so its user keeps the place they had before the interrupted claim.
            requeued_rows = await self.conn.execute_fetchall(
                f"UPDATE jobs SET status = ?, progress = 0, started_at = NULL, {LEASE_CLEARED_SQL}"
                f" WHERE {mine} RETURNING *",
                (JobStatus.QUEUED, JobStatus.RUNNING, worker_id),
            )
            undelivered_rows = await self.conn.execute_fetchall(
                "SELECT * FROM jobs WHERE status = ? ORDER BY id", (JobStatus.GENERATED,)
            )
        return Recovery(
            _sorted_jobs(requeued_rows), _sorted_jobs(failed_rows), _sorted_jobs(undelivered_rows)
        )

    async def watched(self, ids: Iterable[int], since: float | None = None) -> list[Job]:
        """The jobs a front end follows (``bot/notify/watcher.py``): every running or generated
        job, the jobs ``ids`` whatever their status now (to see them end), and with ``since``
        (database clock) every job claimed since then, so one that a worker claimed and ended
        between two looks (refused at claim time, failed at once) is seen too."""
        wanted = tuple(ids)
        extra = f" OR id IN ({_placeholders(wanted)})" if wanted else ""
        params: tuple[Any, ...] = (JobStatus.RUNNING, JobStatus.GENERATED, *wanted)
        if since is not None:
            extra += " OR heartbeat_at >= ?"
            params += (since,)
        return await self._many(
            f"SELECT * FROM jobs WHERE status IN (?, ?){extra} ORDER BY id", params
        )

    async def db_now(self) -> float:
        """The database clock, UNIX seconds (``bot/storage/clock.py``)."""
        return float(await self._scalar(f"SELECT {now_sql(self.conn)}"))

    # ------------------------------------------------------------ queue views

    async def queue_order(self) -> list[Job]:
        """Every queued job in the order :meth:`claim_next` will claim them if nothing else
        arrives: the fair queue (:data:`QUEUE_ORDER_SQL`). Positions, ETAs and /queue read it,
        so what users are told is what the worker does."""
        return await self._many(QUEUE_ORDER_SQL.format(columns="w.*"), QUEUE_ORDER_PARAMS)

    async def queue_position(self, job_id: int) -> int | None:
        """1 = claimed next (in :meth:`queue_order`); None if the job is not queued."""
        ids = await self.queued_ids()
        return ids.index(job_id) + 1 if job_id in ids else None

    async def queued_ids(self) -> list[int]:
        """Ids of the queued jobs in claim order (:meth:`queue_order`)."""
        rows = await self.conn.execute_fetchall(
            QUEUE_ORDER_SQL.format(columns="w.id"), QUEUE_ORDER_PARAMS
        )
        return [row[0] for row in rows]

    async def state_counts(self) -> dict[tuple[str, str | None], int]:
        """Every job counted by ``(status, error)``: the metrics' jobs by state and finished
        jobs by outcome and reason (``bot/observability/metrics.py``)."""
        rows = await self.conn.execute_fetchall(
            "SELECT status, error, COUNT(*) FROM jobs GROUP BY status, error"
        )
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def count_queued(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM jobs WHERE status = ?", (JobStatus.QUEUED,))

    async def active_count(self, user_id: int) -> int:
        """Queued + running jobs of a user (MAX_ACTIVE_JOBS_PER_USER)."""
        return await self._scalar(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN (?, ?)",
            (user_id, *JobStatus.ACTIVE),
        )

    async def cost_since(
        self, since_ts: float, *, user_id: int | None = None, chat_id: int | None = None
    ) -> float:
        """Ordinary videos charged since ``since_ts`` to a user or to a chat (the daily
        budgets): the stored ``cost`` of every job created since then, except jobs that ended
        without ever starting to render (``CHARGED_SQL``)."""
        column, key = ("user_id", user_id) if user_id is not None else ("chat_id", chat_id)
        if key is None:
            raise ValueError("cost_since needs a user_id or a chat_id")
        total = await self._scalar(
            f"SELECT SUM(cost) FROM jobs WHERE {column} = ? AND created_at >= ? AND {CHARGED_SQL}",
            (key, since_ts, *CHARGED_PARAMS),
        )
        return float(total or 0.0)

    async def count_since(self, user_id: int, since_ts: float) -> int:
        """Jobs the user created since ``since_ts``, whatever became of them (DAILY_JOBS_PER_USER)."""
        return await self._scalar(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ?", (user_id, since_ts)
        )

    async def user_jobs(
        self, user_id: int, statuses: Iterable[str] | None = None, limit: int = 10
    ) -> list[Job]:
        """A user's jobs, newest first, optionally only in ``statuses``."""
        if statuses is None:
            return await self._many(
                "SELECT * FROM jobs WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
            )
        wanted = tuple(statuses)
        if not wanted:
            return []
        return await self._many(
            f"SELECT * FROM jobs WHERE user_id = ? AND status IN ({_placeholders(wanted)})"
            " ORDER BY id DESC LIMIT ?",
            (user_id, *wanted, limit),
        )

    async def latest_active(self, user_id: int) -> Job | None:
        """The user's newest queued or running job (``/cancel`` without an id)."""
        jobs = await self.user_jobs(user_id, JobStatus.ACTIVE, limit=1)
        return jobs[0] if jobs else None

    async def all_active(self) -> list[Job]:
        """Every running job (oldest first), then every queued one in claim order
        (:meth:`queue_order`): admin ``/queue``, status refresh."""
        running = await self._many(
            "SELECT * FROM jobs WHERE status = ? ORDER BY id", (JobStatus.RUNNING,)
        )
        return running + await self.queue_order()

    async def recent_durations(self, limit: int = 20) -> list[float]:
        """``gen_seconds`` of the most recently generated jobs, newest first (for the ETA).

        Counts every job that finished generating (delivered or not): delivery does not change
        how long the GPU took.
        """
        rows = await self.conn.execute_fetchall(
            "SELECT gen_seconds FROM jobs WHERE gen_seconds IS NOT NULL"
            " ORDER BY generated_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [row[0] for row in rows]

    async def recent_runs(self, limit: int = 20) -> list[FinishedRun]:
        """``gen_seconds`` and options of the most recently generated jobs, newest first: what
        the ETA learns the cost of each quality tier from (``bot/eta.py``). The same jobs as
        :meth:`recent_durations`."""
        rows = await self.conn.execute_fetchall(
            "SELECT gen_seconds, options, prompt FROM jobs WHERE gen_seconds IS NOT NULL"
            " ORDER BY generated_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [FinishedRun(row[0], options_from_json(row[1], row[2])) for row in rows]

    # ------------------------------------------------------------ statistics

    async def stats(self, since_ts: float) -> dict[str, Any]:
        """Figures for ``/stats``; windows are by ``created_at``.

        Keys: ``by_status_since`` / ``by_status_total`` (every status, zeros included),
        ``jobs_since`` / ``jobs_total``, ``mean_gen_seconds`` / ``p95_gen_seconds`` (since) and
        ``*_total``, ``failure_rate`` / ``failure_rate_total`` (failed ÷ jobs that reached a
        delivered/failed/undeliverable end; cancelled ones are the user's choice; None if none),
        ``queue_length`` (queued now), ``running`` (running now).
        """
        rows = await self.conn.execute_fetchall(
            "SELECT status, COUNT(*), SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END)"
            " FROM jobs GROUP BY status",
            (since_ts,),
        )
        total = dict.fromkeys(JobStatus.ALL, 0)
        since = dict.fromkeys(JobStatus.ALL, 0)
        for status, count, count_since in rows:
            total[status] = count
            since[status] = count_since or 0
        durations = await self.conn.execute_fetchall(
            "SELECT gen_seconds, created_at >= ? FROM jobs WHERE gen_seconds IS NOT NULL",
            (since_ts,),
        )
        all_seconds = [row[0] for row in durations]
        since_seconds = [row[0] for row in durations if row[1]]

        def failure_rate(counts: dict[str, int]) -> float | None:
            ended = (
                counts[JobStatus.DELIVERED]
                + counts[JobStatus.FAILED]
                + counts[JobStatus.UNDELIVERABLE]
            )
            return counts[JobStatus.FAILED] / ended if ended else None

        def mean(values: list[float]) -> float | None:
            return sum(values) / len(values) if values else None

        return {
            "by_status_since": since,
            "by_status_total": total,
            "jobs_since": sum(since.values()),
            "jobs_total": sum(total.values()),
            "mean_gen_seconds": mean(since_seconds),
            "p95_gen_seconds": percentile(since_seconds, 95),
            "mean_gen_seconds_total": mean(all_seconds),
            "p95_gen_seconds_total": percentile(all_seconds, 95),
            "failure_rate": failure_rate(since),
            "failure_rate_total": failure_rate(total),
            "queue_length": total[JobStatus.QUEUED],
            "running": total[JobStatus.RUNNING],
        }

    async def hourly(self, since_ts: float) -> list[HourBucket]:
        """Jobs created per hour and their mean generation time, every hour from the one holding
        ``since_ts`` to the current one (empty hours included, so a chart has no gaps)."""
        rows = await self.conn.execute_fetchall(
            f"SELECT {self.dialect.floor_int('created_at / 3600')} AS hour, COUNT(*),"
            " AVG(gen_seconds) FROM jobs WHERE created_at >= ? GROUP BY hour",
            (since_ts,),
        )
        by_hour = {row[0]: (row[1], row[2]) for row in rows}
        first = int(since_ts // 3600)
        last = max(int(self.clock() // 3600), max(by_hour, default=first))
        return [
            HourBucket(float(hour * 3600), *by_hour.get(hour, (0, None)))
            for hour in range(first, last + 1)
        ]

    # ------------------------------------------------------------ stored files (VIDEO_RETENTION_DAYS)

    async def expired_files(self, before_ts: float) -> list[Job]:
        """Jobs in a final state that ended before ``before_ts`` and still point to a stored
        file (``video_path`` or the thumbnail in ``video_meta``), oldest first."""
        return await self._many(
            f"SELECT * FROM jobs WHERE status IN ({_placeholders(JobStatus.FINAL)})"
            " AND COALESCE(finished_at, generated_at, created_at) < ?"
            " AND (video_path IS NOT NULL"
            f" OR {self.dialect.json_text('video_meta', 'thumbnail')} IS NOT NULL) ORDER BY id",
            (*JobStatus.FINAL, before_ts),
        )

    async def forget_prompts(self, before_ts: float) -> int:
        """``DATA_RETENTION_DAYS``: blank the texts users wrote (prompt, English prompt, negative
        prompt) of jobs that ended before ``before_ts``; their status, options, times and the
        counts /stats shows stay. Returns how many jobs were blanked."""
        blanked = self.dialect.json_merge("options", {"prompt": "''", "negative_prompt": "''"})
        cursor = await self.conn.execute(
            f"UPDATE jobs SET prompt = '', prompt_en = NULL, options = {blanked}"
            f" WHERE status IN ({_placeholders(JobStatus.FINAL)})"
            " AND COALESCE(finished_at, generated_at, created_at) < ? AND prompt != ''",
            (*JobStatus.FINAL, before_ts),
        )
        return cursor.rowcount

    async def file_references(self) -> tuple[set[str], set[int]]:
        """Every stored path some job points to (videos and thumbnails, as written), and the ids
        of jobs whose files must stay whatever their age (queued, running, generated)."""
        keep = tuple(s for s in JobStatus.ALL if s not in JobStatus.FINAL)
        thumbnail = self.dialect.json_text("video_meta", "thumbnail")
        rows = await self.conn.execute_fetchall(
            f"SELECT id, status, video_path, {thumbnail} FROM jobs"
            f" WHERE video_path IS NOT NULL OR {thumbnail} IS NOT NULL"
            f" OR status IN ({_placeholders(keep)})",
            keep,
        )
        paths = {path for row in rows for path in (row[2], row[3]) if path}
        return paths, {row[0] for row in rows if row[1] in keep}

    async def mark_files_deleted(self, job_id: int) -> bool:
        """Record that a final job's files are gone: ``video_path`` becomes NULL, ``video_meta``
        keeps its facts with ``path``/``thumbnail`` NULL and ``files_deleted_at`` set. The
        Telegram ``file_id`` stays. False if the job is not in a final state."""
        return await self._changed(
            "UPDATE jobs SET video_path = NULL, video_meta = "
            + self.dialect.json_merge(
                "COALESCE(video_meta, '{}')",
                {
                    "path": "NULL",
                    "thumbnail": "NULL",
                    "files_deleted_at": "CAST(? AS DOUBLE PRECISION)",
                },
            )
            + f" WHERE id = ? AND status IN ({_placeholders(JobStatus.FINAL)})",
            (self.clock(), job_id, *JobStatus.FINAL),
        )


class PostgresJobStore(JobStore):
    """The same store on PostgreSQL, where several processes claim at once: the claim locks the
    row it picks with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take different jobs
    instead of queuing behind one row lock (and a claimer never waits for another's commit).

    The rows of :data:`CLAIM_SQL` are locked in the fair order; a row another transaction
    claims meanwhile is skipped (locked) or fails the re-checked ``status``, and its user's next
    job is not taken instead (that user's locked job is still their oldest queued one). When
    every candidate is locked by other claimers the claim finds nothing this time (the worker
    looks again), never a job out of turn."""

    def _next_claim_sql(self) -> str:
        return f"{CLAIM_SQL} FOR UPDATE OF q SKIP LOCKED LIMIT 1"

    async def cancel(self, job_id: int) -> Job | None:
        """Mark the row (the durable marker the heartbeats read), then ``NOTIFY`` the workers
        when it was running: the one rendering it stops at its next step instead of at its next
        heartbeat (bot/worker/cancels.py). A lost notification only costs that wait."""
        job = await super().cancel(job_id)
        if job is not None and job.status == JobStatus.RUNNING:
            try:
                await self.conn.execute_fetchall(
                    "SELECT pg_notify(?, ?)", (CANCEL_CHANNEL, str(job_id))
                )
            except Exception as error:  # the hint only: the row already says cancelled
                log.warning("job %s: cancel notification not sent: %s", job_id, error)
        return job


def job_store(conn: Database, clock: Callable[[], float] = time.time) -> JobStore:
    """The :class:`JobStore` implementation for ``conn``'s engine."""
    if dialect_of(conn).name == "postgresql":
        return PostgresJobStore(conn, clock)
    return JobStore(conn, clock)
