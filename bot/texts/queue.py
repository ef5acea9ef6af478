"""/queue, /cancel, /history and the answers to pressed job buttons."""

from __future__ import annotations

from bot.i18n import _, duration, number
from bot.texts import one_line, percent, utc_time

STATUS_ICONS = {
    "queued": "⏳",
    "running": "🎬",
    "generated": "📤",
    "delivered": "✅",
    "cancelled": "❌",
    "failed": "⚠️",
    "undeliverable": "🚫",
}


def status_name(status: str) -> str:
    names = {
        "queued": _("queued"),
        "running": _("generating"),
        "generated": _("sending"),
        "delivered": _("done"),
        "cancelled": _("cancelled"),
        "failed": _("error"),
        "undeliverable": _("not delivered"),
    }
    return names.get(status, status)


# ---------------------------------------------------------------- /queue


def queue_empty() -> str:
    return _(
        "You have no jobs in the queue.\n"
        "Send a description of a video, for example: “a cat plays the piano in space”."
    )


def queue_header() -> str:
    return _("🗂 Your jobs")


def queue_footer() -> str:
    return _("Cancel: /cancel (the latest) or /cancel number.")


def queue_paused() -> str:
    return _("⏸ Generation is paused by the administrator: jobs wait for their turn.")


def admin_queue_empty() -> str:
    return _("The queue is empty: no jobs queued or in progress.")


def queue_line_queued(job_id: int, prompt: str, position: int | None, eta: float | None) -> str:
    place = _("place {n}").format(n=position) if position else status_name("queued")
    if eta is not None:
        place += ", " + _("video in ≈ {wait}").format(wait=duration(eta))
    return f"⏳ #{job_id} «{one_line(prompt, 40)}» — {place}"


def queue_line_running(job_id: int, prompt: str, fraction: float, remaining: float | None) -> str:
    state = f"{status_name('running')}, {percent(fraction)}"
    if remaining is not None:
        state += ", " + _("≈ {wait} left").format(wait=duration(remaining))
    return f"🎬 #{job_id} «{one_line(prompt, 40)}» — {state}"


def admin_queue_header(total: int, queued: int) -> str:
    return _("🗂 All active jobs: {total} ({queued} queued)").format(total=total, queued=queued)


def admin_queue_line(
    job_id: int,
    user_id: int,
    username: str | None,
    status: str,
    age: float,
    fraction: float,
    cost: float | None = None,
) -> str:
    who = f"{user_id}" + (f" @{username}" if username else "")
    ago = _("{time} ago").format(time=duration(age))
    line = (
        f"{STATUS_ICONS.get(status, '•')} #{job_id} · {who} · {status_name(status)}"
        f" · {ago} · {percent(fraction)}"
    )
    if cost is not None:
        line += " · " + _("cost {cost}").format(cost=number(cost, digits=1))
    return line


def admin_queue_more(hidden: int) -> str:
    return _("… and {n} more").format(n=hidden)


# ---------------------------------------------------------------- /cancel


def cancel_nothing() -> str:
    return _("No jobs queued or in progress — nothing to cancel.")


def cancel_bad_id() -> str:
    return _(
        "A job number is a whole number, for example: /cancel 12. Numbers are shown in /queue."
    )


def cancel_not_found(job_id: int) -> str:
    # The same words whether the job does not exist or belongs to someone else: nothing leaks.
    return _("There is no #{id} among your queued and running jobs. Your jobs: /queue.").format(
        id=job_id
    )


def cancel_already_final(job_id: int, status: str) -> str:
    return _("Job #{id} has already ended ({status}), nothing to cancel.").format(
        id=job_id, status=status_name(status)
    )


def cancelled_queued(job_id: int) -> str:
    return _("❌ Job #{id} is cancelled and removed from the queue.").format(id=job_id)


def cancelled_running(job_id: int) -> str:
    return _("⏹ Job #{id} was stopped in the middle of generation, there will be no video.").format(
        id=job_id
    )


def cancelled_status(job_id: int) -> str:
    """The job's own status message after a cancel."""
    return _("❌ Job #{id} cancelled.").format(id=job_id)


def cancelled_by_admin_status(job_id: int) -> str:
    return _("❌ Job #{id} was cancelled by the administrator.").format(id=job_id)


# ---------------------------------------------------------------- /history


def history_empty() -> str:
    return _("The history is empty. Send a description of a video and it will show up here.")


def history_header() -> str:
    return _("🕘 Latest jobs (UTC time). 🔁 — repeat with a new seed.")


def history_line(
    index: int,
    job_id: int,
    prompt: str,
    status: str,
    seed: int,
    created_at: float,
    mark: str = "",
) -> str:
    """``mark``: what kind of job it was (🖼 a photo job), before its prompt."""
    icon = STATUS_ICONS.get(status, "•")
    facts = _("{status} · seed {seed} · {time}").format(
        status=status_name(status), seed=seed, time=utc_time(created_at)
    )
    kind = f"{mark} " if mark else ""
    return f"{index}. #{job_id} {kind}«{one_line(prompt)}»\n    {icon} {facts}"


def history_button(job_id: int) -> str:
    return f"🔁 #{job_id}"


# ---------------------------------------------------------------- pressed buttons


def button_foreign() -> str:
    return _("This button belongs to someone else's job — nothing was changed.")


def button_broken() -> str:
    return _("This button is outdated or damaged — nothing was changed.")


def repeat_queued(job_id: int) -> str:
    return _("🔁 A new take of job #{id} is queued.").format(id=job_id)
