"""Operator commands: /stats (and its chart), /ban, /unban, /pause, /resume."""

from __future__ import annotations

from bot.i18n import _, duration, ngettext, number, percentage
from bot.texts.queue import status_name


def not_admin() -> str:
    return _("This command is only for the bot's administrator.")


def ban_usage() -> str:
    return _(
        "Give the user id, or the chat id of someone who posts as a channel: /ban 123456789 or /ban -1001234567890 (ids are shown in /queue)."
    )


def unban_usage() -> str:
    return _("Give the user or chat id: /unban 123456789.")


def ban_admin() -> str:
    return _("An administrator cannot be blocked.")


def ban_done(user_id: int, cancelled: int) -> str:
    return _("🚫 User {id} is blocked. Their queued jobs cancelled: {n}.").format(
        id=user_id, n=cancelled
    )


def ban_already(user_id: int, cancelled: int) -> str:
    return _("User {id} was already blocked. Queued jobs cancelled: {n}.").format(
        id=user_id, n=cancelled
    )


def unban_done(user_id: int) -> str:
    return _("✅ User {id} is unblocked.").format(id=user_id)


def unban_not_banned(user_id: int) -> str:
    return _("User {id} was not blocked.").format(id=user_id)


def pause_done() -> str:
    return _(
        "⏸ Generation is paused. Jobs wait in the queue, new ones are accepted. "
        "It stays paused after a restart. Continue: /resume"
    )


def pause_already() -> str:
    return _("Generation is already paused. Continue: /resume")


def resume_done() -> str:
    return _("▶️ Generation continues.")


def resume_not_paused() -> str:
    return _("Generation is running anyway.")


def no_data(reason: str) -> str:
    return _("no data ({reason})").format(reason=reason)


def disk(files: int, size_bytes: int, retention_days: int | None = None) -> str:
    """For example: Videos on disk: 12 files, 34.5 MB (kept for 7 days)."""
    text = ngettext(
        "Videos on disk: {n} file, {mb} MB", "Videos on disk: {n} files, {mb} MB", files
    ).format(n=files, mb=number(size_bytes / 1e6, digits=1))
    if retention_days is not None and retention_days <= 0:
        text += " " + _("(kept forever)")
    elif retention_days is not None:
        text += " " + _("(kept for {time})").format(time=duration(retention_days * 86400))
    return text


def _counts(by_status: dict[str, int]) -> str:
    parts = [f"{status_name(s)} {n}" for s, n in by_status.items() if n]
    return ", ".join(parts) if parts else _("none")


def _rate(rate: float | None) -> str:
    return "—" if rate is None else percentage(rate)


def stats(stats: dict, *, device: str, uptime: float, paused: bool, disk: str | None = None) -> str:
    lines = [
        _("📊 Statistics"),
        _("Today (since 00:00 UTC): {n} — {counts}").format(
            n=stats["jobs_since"], counts=_counts(stats["by_status_since"])
        ),
        _("Total: {n} — {counts}").format(
            n=stats["jobs_total"], counts=_counts(stats["by_status_total"])
        ),
        _("Generation time today: mean {mean}, p95 {p95}").format(
            mean=duration(stats["mean_gen_seconds"]), p95=duration(stats["p95_gen_seconds"])
        ),
        _("Generation time overall: mean {mean}, p95 {p95}").format(
            mean=duration(stats["mean_gen_seconds_total"]),
            p95=duration(stats["p95_gen_seconds_total"]),
        ),
        _("Failure rate: today {today}, overall {total}").format(
            today=_rate(stats["failure_rate"]), total=_rate(stats["failure_rate_total"])
        ),
        _("Queue: {queued}, in progress: {running}").format(
            queued=stats["queue_length"], running=stats["running"]
        )
        + (" · " + _("⏸ paused") if paused else ""),
        _("Device: {device}").format(device=device),
    ]
    if disk:
        lines.append(disk)
    lines.append(_("Uptime: {time}").format(time=duration(uptime)))
    return "\n".join(lines)


def workers(rows: list[tuple[str, str, float, bool]]) -> str:
    """The /stats lines of the GPU workers: ``(worker id, device, seconds since last seen,
    stopped)`` each, the most recently seen first."""
    lines = [_("Workers: {n}").format(n=len(rows))]
    for worker_id, device, ago, stopped in rows:
        state = _("stopped") if stopped else _("seen {time} ago").format(time=duration(ago))
        lines.append(f"• {worker_id} — {device}, {state}")
    return "\n".join(lines)


def chart_caption() -> str:
    return _("Jobs per hour and mean generation time over 7 days (UTC)")


def chart_labels(days: int) -> dict[str, str]:
    """The words drawn on the /stats chart."""
    return {
        "jobs": _("jobs per hour"),
        "title": _("Last {n} days, UTC").format(n=days),
        "seconds": _("generation, s"),
        "empty": _("no data"),
    }
