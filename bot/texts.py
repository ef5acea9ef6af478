"""Every user-facing Russian string, apart from logic, so wording changes never touch handlers.

Texts are plain strings or small functions of numbers. Messages are sent with ``parse_mode=None``
(plain text), so user prompts need no escaping and can never inject markup.
"""

from __future__ import annotations

import math

from pipeline.options import MAX_SEED, GenerationDefaults, ModelLimits

BAR_WIDTH = 12
CAPTION_LIMIT = 1024
MESSAGE_LIMIT = 4096

# ---------------------------------------------------------------- small helpers


def plural(n: int, one: str, few: str, many: str) -> str:
    """Russian plural form for ``n``: 1 кадр, 2 кадра, 5 кадров."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def duration(seconds: float) -> str:
    """A short human duration: «8 с», «1 мин 20 с», «2 ч 5 мин»."""
    total = max(0, math.ceil(seconds))
    if total < 60:
        return f"{total} с"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} мин {secs} с" if secs else f"{minutes} мин"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} ч {minutes} мин" if minutes else f"{hours} ч"


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "▓" * filled + "░" * (width - filled)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


# ---------------------------------------------------------------- /start, /help

START = (
    "Привет! Я превращаю текст в короткое видео.\n\n"
    "Просто напишите, что должно происходить в кадре, например:\n"
    "«кот играет на пианино в космосе, мультяшный стиль»\n\n"
    "Я поставлю запрос в очередь, покажу прогресс и пришлю видео ответом на ваше сообщение.\n"
    "Подробности и параметры — /help"
)


def help_text(defaults: GenerationDefaults, limits: ModelLimits, max_prompt_chars: int) -> str:
    """/help: how to ask, an example, and every option with the range the loaded model accepts."""
    return (
        "Как пользоваться\n\n"
        "Напишите описание видео обычным сообщением — по-русски или по-английски. "
        "Чем конкретнее (кто, что делает, где, какой стиль и свет), тем лучше.\n\n"
        "Пример:\n"
        "рыжий кот в скафандре плывёт над Землёй, мягкий свет, кинематографично\n\n"
        "С параметрами — командой /generate (или /gen):\n"
        "/gen закат над морем, волны --steps 30 --seed 42 --size "
        f"{defaults.width}x{defaults.height}\n\n"
        "Параметры (можно писать --steps 30, —steps 30 или steps=30):\n"
        f"--steps N — шаги генерации, 1–{limits.max_steps} (сейчас {defaults.steps}); "
        "больше — качественнее, но дольше\n"
        f"--seed N — зерно случайности, 0–{MAX_SEED}; одно зерно — одно и то же видео\n"
        f"--frames N — число кадров, {limits.frames_rule()} (сейчас {defaults.frames})\n"
        f"--fps N — кадров в секунду, 1–{limits.max_fps} (сейчас {defaults.fps})\n"
        f"--size ШxВ — размер, стороны кратны {limits.side_multiple}, "
        f"не больше {limits.max_pixels} пикселей (сейчас {defaults.width}x{defaults.height})\n"
        f"--guidance F — следование тексту, 0–{limits.max_guidance:g} (сейчас {defaults.guidance:g})\n"
        '--negative "…" — чего в кадре быть не должно\n\n'
        f"Описание — до {max_prompt_chars} символов. "
        "Под готовым видео есть кнопки «🔁 Ещё вариант» и «⚙️ Настройки».\n\n"
        "Команды:\n"
        "/generate (/gen) — видео с параметрами\n"
        "/queue — ваши задачи и место в очереди\n"
        "/cancel [номер] — отменить задачу\n"
        "/history — последние 10 задач с кнопкой повтора\n"
        "/settings — формат, длина, качество, зерно, перевод"
    )


COMMANDS: list[tuple[str, str]] = [
    ("start", "Начать"),
    ("help", "Как пользоваться и параметры"),
    ("generate", "Видео с параметрами: /gen текст --steps 30"),
    ("gen", "То же, что /generate"),
]

# ---------------------------------------------------------------- requests

GENERATE_USAGE = (
    "Напишите описание после команды, например:\n/gen кот играет на пианино --steps 30\n\n"
    "Все параметры — в /help"
)
MEDIA_HINT = (
    "Я понимаю только текст: опишите словами, какое видео сделать, например "
    "«собака бежит по пляжу на закате». Картинки, стикеры, голосовые и файлы я не читаю."
)
UNKNOWN_COMMAND = "Не знаю такой команды. Список команд и параметров — /help"
BUTTON_NOT_READY = "Эта кнопка пока не работает."


def limit_active(limit: int) -> str:
    return (
        f"У вас уже {limit} {plural(limit, 'задача', 'задачи', 'задач')} в работе — "
        f"это предел. Новую можно отправить, когда одна из них завершится."
    )


def limit_queue(limit: int) -> str:
    return (
        f"Очередь заполнена: в ней {limit} {plural(limit, 'задача', 'задачи', 'задач')}. "
        "Попробуйте через несколько минут."
    )


# ---------------------------------------------------------------- status


def queued(job_id: int, position: int | None, eta_seconds: float | None) -> str:
    """The status of a waiting job: its number (for /cancel), its place in the queue and when it
    should be ready."""
    lines = [f"⏳ Запрос #{job_id} принят."]
    if position is not None:
        lines.append(f"Место в очереди: {position}")
    if eta_seconds is not None:
        lines.append(f"Видео будет примерно через {duration(eta_seconds)}")
    return "\n".join(lines)


PAUSED_NOTE = "⏸ Генерация сейчас приостановлена администратором. Запрос сохранён и начнётся после возобновления."
RESUMED = "🔄 Бот перезапустился. Ваш запрос не потерян — продолжаю."
RESUMED_DELIVERY = "🔄 Бот перезапустился. Видео уже готово — отправляю."
STARTING = "🎬 Начинаю генерацию…"
TRANSLATING = "🌐 Перевожу запрос на английский…"
ENCODING_TEXT = "🧠 Разбираю запрос…"
DECODING = "🎞 Собираю кадры…"
ENCODING_VIDEO = "📦 Кодирую видео…"
UPLOADING = "📤 Отправляю видео…"


def running(
    prompt_en: str | None,
    stage_line: str,
    *,
    fraction: float | None = None,
    step: int | None = None,
    total: int | None = None,
    eta_seconds: float | None = None,
    job_id: int | None = None,
) -> str:
    """The status while a job runs: its number (for /cancel), the English prompt, the stage, a
    bar, step i/n and the ETA."""
    lines = [f"Запрос #{job_id} в работе"] if job_id is not None else []
    if prompt_en:
        lines.append(f"Запрос для модели: {shorten(prompt_en, 300)}")
        lines.append("")
    lines.append(stage_line)
    if fraction is not None:
        lines.append(f"{progress_bar(fraction)} {int(fraction * 100)}%")
    details = []
    if step is not None and total:
        details.append(f"шаг {step}/{total}")
    if eta_seconds is not None:
        details.append(f"осталось ~{duration(eta_seconds)}")
    if details:
        lines.append(", ".join(details).capitalize())
    return "\n".join(lines)


GENERATING = "🎬 Генерирую видео"

# ---------------------------------------------------------------- results


def caption(
    prompt: str,
    prompt_en: str | None,
    *,
    seed: int,
    steps: int,
    width: int,
    height: int,
    frames: int,
    fps: int,
    seconds: float | None,
) -> str:
    """The video caption, always ≤ 1024 characters: the prompts are cut, the facts never."""
    frames_word = plural(frames, "кадр", "кадра", "кадров")
    facts = f"Зерно: {seed} · шагов: {steps} · {width}x{height}, {frames} {frames_word}, {fps} к/с"
    if seconds is not None:
        facts += f"\nГотово за {duration(seconds)}"
    show_en = bool(prompt_en) and prompt_en.strip() != prompt.strip()
    room = CAPTION_LIMIT - len(facts) - 2
    if show_en:
        room -= len("\nEN: ")
        prompt_room = max(40, room // 2)
        en_room = room - min(len(prompt.strip()), prompt_room)
        head = shorten(prompt, prompt_room) + "\nEN: " + shorten(prompt_en or "", en_room)
    else:
        head = shorten(prompt, room)
    return shorten(f"{head}\n\n{facts}", CAPTION_LIMIT)


FAILED = (
    "😔 Не получилось сделать видео: во время генерации произошла ошибка. "
    "Попробуйте ещё раз; если повторится — уменьшите число кадров (--frames) или размер (--size)."
)
FAILED_MEMORY = (
    "😔 Не хватило видеопамяти для такого видео. "
    "Попробуйте меньше кадров (--frames) или меньший размер (--size), например --size 480x272."
)
TOO_LARGE = (
    "😔 Видео получилось слишком большим для отправки в Telegram даже после сжатия. "
    "Попробуйте меньше кадров (--frames) или меньший размер (--size)."
)
FAILED_ATTEMPTS = (
    "😔 Запрос прерывался несколько раз при перезапусках бота, поэтому я его остановил. "
    "Отправьте его ещё раз, если видео всё ещё нужно."
)
FAILED_DELIVERY = "😔 Видео готово, но отправить его не получилось. Попробуйте запросить ещё раз."
CANCELLED = "✖️ Запрос отменён."
VIDEO_MISSING = (
    "😔 Видео было готово, но файл потерялся при перезапуске бота. Отправьте запрос ещё раз."
)

BUTTON_REPEAT = "🔁 Ещё вариант"
BUTTON_SETTINGS = "⚙️ Настройки"
