"""Russian texts of /queue, /cancel, /history, /settings, the result buttons and admin commands.

Kept apart from the handlers so wording can change without touching logic. Functions only format
numbers and lists; they make no decisions.
"""

from __future__ import annotations

from datetime import datetime, timezone

from bot.texts import plural

# ---------------------------------------------------------------- shared pieces

STATUS_NAMES = {
    "queued": "в очереди",
    "running": "генерируется",
    "generated": "отправляется",
    "delivered": "готово",
    "cancelled": "отменено",
    "failed": "ошибка",
    "undeliverable": "не доставлено",
}
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
    return STATUS_NAMES.get(status, status)


def duration(seconds: float | None) -> str:
    """``42 с``, ``3 мин``, ``1 ч 5 мин``, ``2 дн 3 ч``."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} с"
    minutes = seconds // 60
    if minutes < 60:
        rest = seconds % 60
        return f"{minutes} мин {rest} с" if minutes < 10 and rest else f"{minutes} мин"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} ч {minutes % 60} мин"
    return f"{hours // 24} дн {hours % 24} ч"


def short_prompt(prompt: str, limit: int = 60) -> str:
    """Prompt on one line, cut to ``limit`` characters (messages are plain text, no markup)."""
    prompt = " ".join(prompt.split())
    if len(prompt) > limit:
        prompt = prompt[: limit - 1].rstrip() + "…"
    return prompt


def utc_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%d.%m %H:%M")


def percent(fraction: float | None) -> str:
    return f"{round(100 * max(0.0, min(1.0, fraction or 0.0)))}%"


# ---------------------------------------------------------------- /queue

QUEUE_EMPTY = "У вас нет задач в очереди.\nОтправьте описание видео, например: «кот играет на пианино в космосе»."
QUEUE_HEADER = "🗂 Ваши задачи"
QUEUE_FOOTER = "Отменить: /cancel (последнюю) или /cancel номер."
QUEUE_PAUSED = "⏸ Генерация приостановлена администратором: задачи ждут своей очереди."
ADMIN_QUEUE_EMPTY = "Очередь пуста: нет задач в очереди или в работе."


def queue_line_queued(job_id: int, prompt: str, position: int | None, eta: float | None) -> str:
    place = f"место {position}" if position else "в очереди"
    wait = f", видео через ≈ {duration(eta)}" if eta is not None else ""
    return f"⏳ #{job_id} «{short_prompt(prompt, 40)}» — {place}{wait}"


def queue_line_running(job_id: int, prompt: str, fraction: float, remaining: float | None) -> str:
    left = f", осталось ≈ {duration(remaining)}" if remaining is not None else ""
    return f"🎬 #{job_id} «{short_prompt(prompt, 40)}» — генерируется, {percent(fraction)}{left}"


def admin_queue_header(total: int, queued: int) -> str:
    return f"🗂 Все активные задачи: {total} (в очереди {queued})"


def admin_queue_line(
    job_id: int, user_id: int, username: str | None, status: str, age: float, fraction: float
) -> str:
    who = f"{user_id}" + (f" @{username}" if username else "")
    return (
        f"{STATUS_ICONS.get(status, '•')} #{job_id} · {who} · {status_name(status)}"
        f" · {duration(age)} назад · {percent(fraction)}"
    )


def admin_queue_more(hidden: int) -> str:
    return f"… и ещё {hidden}"


# ---------------------------------------------------------------- /cancel

CANCEL_NOTHING = "Нет задач в очереди или в работе — отменять нечего."
CANCEL_BAD_ID = "Номер задачи — целое число, например: /cancel 12. Номера видны в /queue."


def cancel_not_found(job_id: int) -> str:
    # The same words whether the job does not exist or belongs to someone else: nothing leaks.
    return f"Среди ваших задач в очереди и в работе нет #{job_id}. Ваши задачи: /queue."


def cancel_already_final(job_id: int, status: str) -> str:
    return f"Задача #{job_id} уже завершена ({status_name(status)}), отменять нечего."


def cancelled_queued(job_id: int) -> str:
    return f"❌ Задача #{job_id} отменена и убрана из очереди."


def cancelled_running(job_id: int) -> str:
    return f"⏹ Задача #{job_id} остановлена посреди генерации, видео не будет."


def cancelled_status(job_id: int) -> str:
    """The job's own status message after a cancel."""
    return f"❌ Задача #{job_id} отменена."


def cancelled_by_admin_status(job_id: int) -> str:
    return f"❌ Задача #{job_id} отменена администратором."


# ---------------------------------------------------------------- /history

HISTORY_EMPTY = "История пуста. Отправьте описание видео — и оно появится здесь."
HISTORY_HEADER = "🕘 Последние задачи (время UTC). 🔁 — повторить с новым зерном."


def history_line(
    index: int, job_id: int, prompt: str, status: str, seed: int, created_at: float
) -> str:
    return (
        f"{index}. #{job_id} «{short_prompt(prompt)}»\n"
        f"    {STATUS_ICONS.get(status, '•')} {status_name(status)} · зерно {seed} · {utc_time(created_at)}"
    )


def history_button(job_id: int) -> str:
    return f"🔁 #{job_id}"


# ---------------------------------------------------------------- buttons

BUTTON_FOREIGN = "Эта кнопка относится не к вашей задаче — ничего не изменено."
BUTTON_BROKEN = "Кнопка устарела или повреждена — ничего не изменено."
BUTTON_SETTINGS_IN_GROUP = (
    "Настройки меняются в личном чате с ботом: откройте его и отправьте /settings."
)


def repeat_queued(job_id: int) -> str:
    return f"🔁 Новый вариант задачи #{job_id} поставлен в очередь."


# ---------------------------------------------------------------- /settings

SETTINGS_LABELS = {
    "aspect": "Формат",
    "length": "Длина",
    "quality": "Качество",
    "seed": "Зерно",
    "translate": "Перевод",
}
SETTINGS_VALUES = {
    "aspect": {"16x9": "16:9", "9x16": "9:16", "1x1": "1:1"},
    "length": {"short": "короткая", "normal": "обычная"},
    "quality": {"fast": "быстро", "balanced": "баланс", "best": "лучше"},
    "seed": {"random": "случайное", "fixed": "фиксированное"},
    "translate": {"auto": "авто", "off": "выкл"},
}
SETTINGS_RESET_BUTTON = "↩️ Сбросить всё"
SETTINGS_RESET_DONE = "Настройки сброшены: действуют значения по умолчанию."
SETTINGS_NOTHING_TO_RESET = "Вы ничего не меняли: уже действуют значения по умолчанию."
SETTINGS_SAVED = "Сохранено"
SETTINGS_UNCHANGED = "Уже выбрано"


def settings_button(name: str, value: str, selected: bool) -> str:
    label = SETTINGS_VALUES[name][value]
    return f"✅ {label}" if selected else label


def settings_text(
    values: dict,
    *,
    width: int,
    height: int,
    frames: int,
    fps: int,
    steps: int,
    changed: set[str],
    fast_mode: bool = False,
) -> str:
    def mark(name: str) -> str:
        return "" if name in changed else " (по умолчанию)"

    seed = values["seed"]
    seed_text = SETTINGS_VALUES["seed"][seed]
    if seed == "fixed" and "seed_value" in values:
        seed_text += f" ({values['seed_value']})"
    translate = (
        "русский текст переводится на английский, если модель его не понимает"
        if values["translate"] == "auto"
        else "текст уходит в модель как есть"
    )
    quality = SETTINGS_VALUES["quality"][values["quality"]]
    if values["quality"] == "fast" and fast_mode:
        quality += ", быстрый режим оператора"
    return (
        "⚙️ Ваши настройки для новых видео:\n"
        f"• Формат: {SETTINGS_VALUES['aspect'][values['aspect']]} ({width}×{height}){mark('aspect')}\n"
        f"• Длина: {SETTINGS_VALUES['length'][values['length']]}"
        f" ({frames} {plural(frames, 'кадр', 'кадра', 'кадров')}, {frames / fps:.1f} с){mark('length')}\n"
        f"• Качество: {quality} ({steps} {plural(steps, 'шаг', 'шага', 'шагов')}){mark('quality')}\n"
        f"• Зерно (seed): {seed_text}{mark('seed')}\n"
        f"• Перевод: {SETTINGS_VALUES['translate'][values['translate']]} — {translate}{mark('translate')}\n\n"
        "Строки кнопок ниже — в том же порядке. Параметры в самом запросе (--steps, --size…) важнее настроек."
    )


# ---------------------------------------------------------------- admin

NOT_ADMIN = "Эта команда доступна только администратору бота."
BAN_USAGE = "Укажите id пользователя: /ban 123456789 (id видно в /queue)."
UNBAN_USAGE = "Укажите id пользователя: /unban 123456789."
BAN_ADMIN = "Администратора заблокировать нельзя."
PAUSE_DONE = (
    "⏸ Генерация приостановлена. Задачи ждут в очереди, новые принимаются. Продолжить: /resume"
)
PAUSE_ALREADY = "Генерация уже приостановлена. Продолжить: /resume"
RESUME_DONE = "▶️ Генерация продолжается."
RESUME_NOT_PAUSED = "Генерация и так идёт."
BANNED = "⛔ Вы заблокированы в этом боте: запросы не принимаются, пока администратор не снимет блокировку."


def not_allowed(user_id: int) -> str:
    return (
        "🔒 Этот бот работает только для пользователей из списка администратора."
        f" Ваш id: {user_id} — передайте его администратору, чтобы вас добавили."
    )


def limit_daily(limit: int, frees_in: float) -> str:
    return (
        f"Дневной лимит исчерпан: не больше {limit} запросов в сутки."
        f" Он обнулится в 00:00 UTC — через {duration(frees_in)}."
    )


STATS_CHART_CAPTION = "Задачи в час и среднее время генерации за 7 дней (UTC)"


def ban_done(user_id: int, cancelled: int) -> str:
    return f"🚫 Пользователь {user_id} заблокирован. Отменено его задач в очереди: {cancelled}."


def ban_already(user_id: int, cancelled: int) -> str:
    return f"Пользователь {user_id} уже был заблокирован. Отменено задач в очереди: {cancelled}."


def unban_done(user_id: int) -> str:
    return f"✅ Пользователь {user_id} разблокирован."


def unban_not_banned(user_id: int) -> str:
    return f"Пользователь {user_id} не был заблокирован."


def _counts(by_status: dict[str, int]) -> str:
    parts = [f"{status_name(s)} {n}" for s, n in by_status.items() if n]
    return ", ".join(parts) if parts else "нет"


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def disk_text(files: int, size_bytes: int, retention_days: int | None = None) -> str:
    """«Видео на диске: 12 файлов, 34.5 МБ (хранятся 7 дн.)»."""
    kept = ""
    if retention_days is not None:
        kept = " (хранятся всегда)" if retention_days <= 0 else f" (хранятся {retention_days} дн.)"
    noun = plural(files, "файл", "файла", "файлов")
    return f"Видео на диске: {files} {noun}, {size_bytes / 1e6:.1f} МБ{kept}"


def stats_text(
    stats: dict, *, device: str, uptime: float, paused: bool, disk: str | None = None
) -> str:
    return (
        "📊 Статистика\n"
        f"Сегодня (с 00:00 UTC): {stats['jobs_since']} — {_counts(stats['by_status_since'])}\n"
        f"Всего: {stats['jobs_total']} — {_counts(stats['by_status_total'])}\n"
        f"Время генерации сегодня: среднее {duration(stats['mean_gen_seconds'])},"
        f" p95 {duration(stats['p95_gen_seconds'])}\n"
        f"Время генерации за всё время: среднее {duration(stats['mean_gen_seconds_total'])},"
        f" p95 {duration(stats['p95_gen_seconds_total'])}\n"
        f"Доля ошибок: сегодня {_rate(stats['failure_rate'])},"
        f" всего {_rate(stats['failure_rate_total'])}\n"
        f"Очередь: {stats['queue_length']}, в работе: {stats['running']}"
        + (" · ⏸ пауза" if paused else "")
        + f"\nУстройство: {device}\n"
        + (f"{disk}\n" if disk else "")
        + f"Аптайм: {duration(uptime)}"
    )


# ---------------------------------------------------------------- command menus

USER_COMMANDS: list[tuple[str, str]] = [
    ("start", "Начало и пример"),
    ("help", "Как пользоваться, параметры"),
    ("generate", "Сделать видео: /generate текст"),
    ("queue", "Мои задачи и место в очереди"),
    ("cancel", "Отменить задачу: /cancel [номер]"),
    ("history", "Последние 10 задач"),
    ("settings", "Настройки по умолчанию"),
]
GROUP_MENU: list[tuple[str, str]] = [  # in groups the bot answers only these (and mentions)
    ("generate", "Сделать видео: /generate текст"),
    ("gen", "То же, что /generate"),
]
ADMIN_COMMANDS: list[tuple[str, str]] = [
    ("stats", "Статистика и график"),
    ("ban", "Заблокировать: /ban id"),
    ("unban", "Разблокировать: /unban id"),
    ("pause", "Приостановить генерацию"),
    ("resume", "Продолжить генерацию"),
]
