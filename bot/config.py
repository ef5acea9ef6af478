"""The bot's configuration: environment variables or `.env`, read once at start.

Every setting of README's settings table is here (and only here). The token is a ``SecretStr`` so it never shows up in a ``repr``, a
traceback or a log line (see also :mod:`bot.logs`, which masks it in third-party log output).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.storage.videos import parse_s3_uri

CLOUD_UPLOAD_LIMIT = 50 * 1024 * 1024
"""sendVideo limit of the official cloud Bot API."""
LOCAL_UPLOAD_LIMIT = 2000 * 1024 * 1024
"""sendVideo limit of a self-hosted Bot API server (``TELEGRAM_API_URL``)."""

DEFAULT_WEBHOOK_LISTEN = "0.0.0.0:8080"
"""Where the webhook server listens unless ``WEBHOOK_LISTEN`` says otherwise."""

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[x\u0445\u00d7*]\s*(\d{1,5})\s*$", re.IGNORECASE)
_TOKEN_RE = re.compile(r"^\d+:[\w-]{20,}$")
_WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
"""What Telegram accepts as a webhook's ``secret_token`` (setWebhook)."""


def _id_list(value: object) -> list[int]:
    """``"1, 2,3"`` → ``[1, 2, 3]``; an empty string means nobody (not a JSON list, by design)."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [int(v) for v in value]
    text = str(value).strip().strip("[]")
    ids = []
    for part in re.split(r"[,\s;]+", text):
        if part:
            try:
                ids.append(int(part))
            except ValueError:
                raise ValueError(f"{part!r} is not a Telegram user id (a whole number)") from None
    return ids


def parse_size(value: str) -> tuple[int, int]:
    """``"832x480"`` → ``(832, 480)``; also accepts the Cyrillic letter kha and the sign ×."""
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size like 832x480")
    return int(match.group(1)), int(match.group(2))


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` → ``("127.0.0.1", 9464)``; ``":9464"`` listens on every interface,
    ``"[::1]:9464"`` is IPv6; port 0 takes any free port."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9464)")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


def _none_if_blank(value: object) -> object:
    """An empty ``FOO=`` line in .env means "not set", not an empty string or a parse error."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class Settings(BaseSettings):
    """Everything the operator can set; names are the environment variable names, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,  # a malformed BOT_TOKEN is still a secret
    )

    # --- Telegram
    bot_token: SecretStr
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    allowed_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    telegram_api_url: str | None = None
    webhook_url: str | None = None
    """Public HTTPS URL Telegram POSTs updates to (``setWebhook``); unset = long polling."""
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    """Required with ``webhook_url``; Telegram sends it in ``X-Telegram-Bot-Api-Secret-Token``."""
    webhook_listen: str = DEFAULT_WEBHOOK_LISTEN
    """``host:port`` of the webhook's HTTP server (behind the TLS reverse proxy)."""

    # --- storage
    database_path: Path = Path("data/bot.sqlite3")
    database_url: SecretStr | None = None
    """``postgresql://user:password@host/db``: the queue, users, settings, pause and the update
    inbox live in PostgreSQL (shared by every process); unset = SQLite at ``database_path``.
    Secret: it may hold a password."""
    video_dir: Path = Path("data/videos")
    video_retention_days: int = Field(default=7, ge=0)
    """Days a finished job's MP4 and thumbnail stay in ``video_dir`` (0 = forever)."""
    video_dir_max_gb: float = Field(default=50.0, ge=0)
    """Cap on the videos in ``video_dir``: the oldest finished ones go first; while active jobs
    alone fill it, new requests are refused (0 = no cap)."""
    video_store: str | None = None
    """``s3://bucket/prefix``: finished videos go to an S3-compatible object store (workers on
    other machines); unset = they stay in ``video_dir`` (``bot/storage/videos.py``)."""
    s3_endpoint_url: str | None = None
    """The object store's URL when it is not AWS (MinIO, Ceph, R2 …); unset = AWS."""
    data_retention_days: int = Field(default=90, ge=0)
    """Days the prompts of finished jobs and the names of inactive users are kept (0 = forever);
    counts, options and times stay for /stats."""

    # --- models
    t2v_model: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    t2v_model_revision: str | None = None
    i2v_model: str | None = None
    """``I2V_MODEL``: Hub id or local directory of a diffusers image-to-video pipeline (Wan 2.1
    I2V, Wan 2.2 TI2V 5B, LTX-Video I2V): photo requests. Unset: photos are answered that the
    bot does not animate them."""
    """Branch, tag or commit of ``T2V_MODEL`` on the Hub (pin it in production)."""
    translator_model: str = "Helsinki-NLP/opus-mt-tc-big-zle-en"
    translator_revision: str | None = None
    translator_device: str = "cpu"
    device: str = "auto"
    memory_mode: str = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    """Regional ``torch.compile``: ``auto`` = on with CUDA (warmed up before the first job)."""
    attention_backend: str | None = None
    quantize: Literal["fp8"] | None = None
    """``fp8``: torchao float8 weights and activations (Ada/Hopper GPUs); unset = off."""
    fast_lora: str | None = None
    """Step-distilled LoRA of the fast tier (file, directory, Hub id or owner/repo/file)."""
    fast_transformer: str | None = None
    """Step-distilled transformer of the fast tier (directory, file or Hub id)."""
    fast_steps: int | None = None
    prompt_model: str | None = None
    """Instruct LLM of the prompt improver (Hub id or directory); unset or ``none`` = off."""
    prompt_device: str = "auto"
    """Where it runs: ``auto`` = the video model's device (between renders), or ``cpu``…"""
    prompt_max_tokens: int = Field(default=256, ge=16, le=2048)
    """The most tokens one improved prompt may take."""
    prompt_timeout: float = Field(default=20.0, gt=0)
    """Seconds one improvement may take; then the plain translation is used."""
    default_quality: Literal["fast", "balanced", "best"] = "balanced"
    """The quality tier of users who never picked one in /settings (``pipeline.quality``)."""

    # --- operator defaults and bounds (None = the model's own)
    default_steps: int | None = Field(default=None, ge=1)
    default_frames: int | None = Field(default=None, ge=1)
    default_fps: int | None = Field(default=None, ge=1)
    default_size: str | None = None
    default_guidance: float | None = Field(default=None, ge=0)
    max_steps: int | None = Field(default=None, ge=1)
    max_frames: int | None = Field(default=None, ge=1)
    max_pixels: int | None = Field(default=None, ge=64 * 64)

    # --- limits
    max_active_jobs_per_user: int = Field(default=2, ge=1)
    daily_jobs_per_user: int = Field(default=0, ge=0)
    max_queue: int = Field(default=100, ge=1)
    max_prompt_chars: int = Field(default=1000, ge=1)
    daily_cost_per_user: float = Field(default=20.0, ge=0)
    """Ordinary videos (``bot/services/cost.py``) one user may spend per UTC day (0 = no budget)."""
    daily_cost_per_chat: float = Field(default=40.0, ge=0)
    """Ordinary videos all members of one group chat may spend per UTC day (0 = no budget)."""
    max_cost_per_job: float = Field(default=4.0, ge=0)
    """The most one request may cost, in ordinary videos (0 = no cap)."""
    flood_burst: int = Field(default=10, ge=0)
    """Updates one user may send at once before the bot skips theirs (0 = no flood limit)."""
    flood_rate: float = Field(default=0.5, gt=0)
    """Updates per second one user may send after a burst (their bucket refills at this rate)."""

    # --- content policy (README, "Content policy")
    blocked_words_file: Path | None = None
    """The operator's blocked words and phrases, Russian and English (one per line, ``#``
    comments); matched on every request and on the translated prompt; reloaded when it changes."""
    nsfw_model: str | None = None
    """Hub id or local directory of a transformers image classifier run on a few frames of each
    finished video; a flagged video is withheld. Unset = off."""
    nsfw_threshold: float = Field(default=0.5, gt=0, le=1)
    """Probability of the classifier's nsfw labels from which a video is withheld."""

    # --- runtime
    log_level: str = "INFO"
    preview: bool = True
    """``PREVIEW`` (on/off): the status message is a photo showing a live preview of the render,
    and the finished video replaces it (off: a text status, the video sent as a new message)."""
    status_min_interval: float = Field(default=3.0, ge=0)
    """Seconds between two edits of one status message (Telegram allows about one a second)."""
    queue_refresh_interval: float = Field(default=10.0, ge=0)
    """Seconds between two refreshes of the queued jobs' positions when the queue moves."""
    max_attempts: int = Field(default=3, ge=1)
    """A job interrupted this many times (crash, restart) fails instead of being requeued."""
    polling_timeout: int = Field(default=10, ge=0)
    """Long-polling wait of getUpdates, seconds."""

    # --- processes (docs/scaling.md, "Processes and leases")
    role: Literal["all", "frontend"] = "all"
    """``all``: Telegram and one in-process worker (``python -m bot``); ``frontend``: the
    Telegram side only (no model, no torch), workers run as ``python -m bot.worker``."""
    worker_id: str | None = None
    """This worker's name in the ``workers`` table and on the jobs it claims; unset: host:pid
    (``python -m bot.worker``) or host:bot (the embedded worker). A stable id lets a restarted
    worker resume its interrupted job at once."""
    lease_seconds: float = Field(default=30.0, gt=0)
    """How long a claimed job stays a worker's without a heartbeat; then the reaper requeues it."""

    # --- observability
    metrics_listen: str | None = None
    """``host:port`` of ``/healthz`` and Prometheus ``/metrics``; unset = off."""
    health_stuck_seconds: float = Field(default=600.0, gt=0)
    """``/healthz`` fails when the running job made no progress for this long (or 20 typical
    denoising steps, if longer)."""

    @field_validator("admin_ids", "allowed_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> list[int]:
        return _id_list(value)

    @field_validator(
        "telegram_api_url",
        "default_steps",
        "default_frames",
        "default_fps",
        "default_size",
        "default_guidance",
        "max_steps",
        "max_frames",
        "max_pixels",
        "attention_backend",
        "fast_lora",
        "fast_transformer",
        "fast_steps",
        "t2v_model_revision",
        "i2v_model",
        "translator_revision",
        "metrics_listen",
        "blocked_words_file",
        "nsfw_model",
        "worker_id",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("video_store", "s3_endpoint_url", mode="before")
    @classmethod
    def _store_blank_is_none(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("video_store")
    @classmethod
    def _check_video_store(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            bucket, prefix = parse_s3_uri(value)
        except ValueError as error:
            raise ValueError(
                f"VIDEO_STORE must be s3://bucket/prefix (or unset to keep videos in VIDEO_DIR):"
                f" {error}"
            ) from None
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("https", "http") or not rest.split("/")[0]:
            raise ValueError("S3_ENDPOINT_URL must be a URL, e.g. http://127.0.0.1:9000")
        if "video_store" in info.data and info.data["video_store"] is None:  # a bad one: said
            raise ValueError("S3_ENDPOINT_URL is set, but VIDEO_STORE is not s3://bucket/prefix")
        return value

    @field_validator("video_retention_days", mode="before")
    @classmethod
    def _retention_blank_is_default(cls, value: object) -> object:
        return 7 if _none_if_blank(value) is None else value

    @property
    def video_dir_max_bytes(self) -> int | None:
        return int(self.video_dir_max_gb * 1e9) if self.video_dir_max_gb > 0 else None

    @field_validator(
        "daily_cost_per_user", "daily_cost_per_chat", "max_cost_per_job", mode="before"
    )
    @classmethod
    def _budget_blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        """An empty ``DAILY_COST_PER_USER=`` keeps the default budget (``0`` turns it off)."""
        if _none_if_blank(value) is None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return "all"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("lease_seconds", mode="before")
    @classmethod
    def _lease_blank_is_default(cls, value: object) -> object:
        return 30.0 if _none_if_blank(value) is None else value

    @property
    def embedded_worker_id(self) -> str:
        """The in-process worker's id (``ROLE=all``): stable across restarts of this host's bot,
        so a restarted bot resumes its own interrupted job at once."""
        return self.worker_id or f"{socket.gethostname()}:bot"

    @property
    def standalone_worker_id(self) -> str:
        """``python -m bot.worker``'s id: ``WORKER_ID``, else host:pid."""
        return self.worker_id or f"{socket.gethostname()}:{os.getpid()}"

    @field_validator("compile", mode="before")
    @classmethod
    def _compile(cls, value: object) -> object:
        """``auto``/``on``/``off``; also true/false, 1/0 and yes/no as older .env files say."""
        text = str(value).strip().lower() if value is not None else ""
        aliases = {"": "auto", "true": "on", "1": "on", "yes": "on"}
        return aliases.get(text, {"false": "off", "0": "off", "no": "off"}.get(text, text))

    @field_validator("prompt_model", mode="before")
    @classmethod
    def _prompt_model(cls, value: object) -> object:
        text = str(value).strip() if value is not None else ""
        return None if text.lower() in ("", "none", "off") else text

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize(cls, value: object) -> object:
        text = str(value).strip().lower() if value is not None else ""
        return None if text in ("", "none", "off") else text

    @field_validator("default_quality", mode="before")
    @classmethod
    def _quality(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return "balanced"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("bot_token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        # The message must not echo the value: it is a secret even when malformed.
        if not _TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError("BOT_TOKEN does not look like a BotFather token (digits:letters)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("default_size")
    @classmethod
    def _check_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url_blank_is_none(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The message must not echo the value: it may hold a password.
        if value is not None and not value.get_secret_value().strip().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("DATABASE_URL must start with postgresql://")
        return value

    @property
    def database_url_value(self) -> str | None:
        """``DATABASE_URL`` in clear (for the connection only), None when SQLite is used."""
        return self.database_url.get_secret_value().strip() if self.database_url else None

    @field_validator("webhook_url", "webhook_secret", mode="before")
    @classmethod
    def _webhook_blank_is_none(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("https", "http") or not rest.split("/")[0]:
            raise ValueError("WEBHOOK_URL must be a full URL, e.g. https://bot.example.com/tg")
        if scheme.lower() == "http" and not info.data.get("telegram_api_url"):
            # The cloud Bot API posts only to HTTPS; a self-hosted one (--local) also to http.
            raise ValueError("WEBHOOK_URL must be https:// (http only with TELEGRAM_API_URL)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # The messages must not echo the value: it is a secret.
        if value is None:
            if info.data.get("webhook_url"):
                raise ValueError("WEBHOOK_SECRET is required with WEBHOOK_URL")
            return None
        if not _WEBHOOK_SECRET_RE.match(value.get_secret_value()):
            raise ValueError(
                "WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
            )
        return value

    @field_validator("webhook_listen", mode="before")
    @classmethod
    def _listen_blank_is_default(cls, value: object) -> object:
        return DEFAULT_WEBHOOK_LISTEN if _none_if_blank(value) is None else value

    @field_validator("webhook_listen")
    @classmethod
    def _check_webhook_listen(cls, value: str) -> str:
        if parse_listen(value)[1] == 0:  # Telegram must find it again: WEBHOOK_URL names the port
            raise ValueError(f"{value!r}: the webhook server needs a fixed port, not 0")
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.strip().upper() or "INFO"

    @property
    def default_width_height(self) -> tuple[int, int] | None:
        return parse_size(self.default_size) if self.default_size else None

    @property
    def webhook_host_port(self) -> tuple[str, int]:
        """Where the webhook server listens (``webhook_listen`` parsed)."""
        return parse_listen(self.webhook_listen)

    @property
    def upload_limit_bytes(self) -> int:
        """What sendVideo accepts: 50 MB on the cloud API, 2000 MB on a self-hosted server."""
        return LOCAL_UPLOAD_LIMIT if self.telegram_api_url else CLOUD_UPLOAD_LIMIT

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """``METRICS_LISTEN`` as ``(host, port)``; None when off."""
        return parse_listen(self.metrics_listen) if self.metrics_listen else None

    @property
    def fast_speedups(self) -> bool:
        """Whether the fast tier has step-distilled weights (else it runs fewer base steps)."""
        return bool(self.fast_lora or self.fast_transformer)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids

    def is_allowed(self, user_id: int | None) -> bool:
        """Whether the allow-list lets this user in (an empty list lets everyone in; admins always)."""
        if user_id is None:
            return False
        return (
            not self.allowed_user_ids or user_id in self.allowed_user_ids or self.is_admin(user_id)
        )


class WorkerSettings(Settings):
    """The settings of ``python -m bot.worker``: the same names, but no ``BOT_TOKEN`` (a worker
    never talks to Telegram; keep the token off GPU machines)."""

    bot_token: SecretStr | None = None  # type: ignore[assignment]

    @field_validator("bot_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:  # type: ignore[override]
        return None  # never used, never kept
