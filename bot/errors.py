"""`OptionError` → a Russian message that names the option, the reason and the allowed range.

The pipeline's error carries a machine-readable ``code`` and English words; the bot words it
again in Russian from the code and the *loaded model's* limits, so the range shown is exactly the
one that the validator applied.
"""

from __future__ import annotations

from pipeline.options import MAX_SEED, OPTION_NAMES, ModelLimits, OptionError

OPTION_LABELS: dict[str, str] = {
    "steps": "--steps (шаги)",
    "seed": "--seed (зерно)",
    "frames": "--frames (кадры)",
    "fps": "--fps (кадров в секунду)",
    "size": "--size (размер)",
    "guidance": "--guidance (следование тексту)",
    "negative": "--negative (чего не должно быть)",
    "prompt": "Описание",
}


def allowed_range(option: str, limits: ModelLimits, max_prompt_chars: int) -> str | None:
    """The allowed values of ``option`` for the loaded model, in Russian."""
    if option == "steps":
        return f"целое число от 1 до {limits.max_steps}"
    if option == "seed":
        return f"целое число от 0 до {MAX_SEED}"
    if option == "frames":
        if limits.frame_multiple > 1:
            r = limits.frame_remainder % limits.frame_multiple
            return (
                f"от {limits.first_valid_frames()} до {limits.last_valid_frames()}, "
                f"вида {limits.frame_multiple}k+{r}"
            )
        return f"от {limits.first_valid_frames()} до {limits.last_valid_frames()}"
    if option == "fps":
        return f"целое число от 1 до {limits.max_fps}"
    if option == "size":
        return (
            f"ШxВ, стороны от {limits.min_side} до {limits.max_side}, кратные {limits.side_multiple}, "
            f"ширина × высота не больше {limits.max_pixels}"
        )
    if option == "guidance":
        return f"число от 0 до {limits.max_guidance:g}"
    if option == "negative":
        return f'текст в кавычках, до {limits.max_negative_chars} символов: --negative "размыто"'
    if option == "prompt":
        return f"до {max_prompt_chars} символов"
    return None


def _reason(error: OptionError, limits: ModelLimits) -> str:
    code, option, value = error.code, error.option, error.value
    shown = f" «{value}»" if value else ""
    if code == "unknown_option":
        return "такого параметра нет"
    if code == "missing_value":
        return "не указано значение"
    if code == "not_integer":
        return f"нужно целое число, а не{shown or ' это'}"
    if code == "not_number":
        return f"нужно число, например 5 или 4.5, а не{shown or ' это'}"
    if code == "out_of_range":
        return f"значение{shown} вне допустимого диапазона"
    if code == "bad_multiple" and option == "frames":
        try:
            nearest = limits.nearest_valid_frames(int(value))
        except ValueError:
            return "эта модель не принимает такое число кадров"
        return f"эта модель не принимает{shown} кадров; ближайшее подходящее число — {nearest}"
    if code == "bad_multiple":
        return f"стороны{shown} должны быть кратны {limits.side_multiple}"
    if code == "bad_size":
        return f"размер{shown} пишется как 832x480 (ширина x высота)"
    if code == "too_many_pixels":
        return f"в размере{shown} слишком много пикселей"
    if code == "unclosed_quote":
        return "кавычка открыта, но не закрыта"
    if code == "duplicate":
        return "указан дважды"
    if code == "empty_prompt":
        return "пустое: опишите словами, что должно быть в видео"
    if code == "too_long":
        return f"слишком длинное ({value} символов)" if value else "слишком длинное"
    return "неверное значение"


def option_error_text(error: OptionError, limits: ModelLimits, max_prompt_chars: int) -> str:
    """The whole reply to a request with a bad option; says that nothing was queued."""
    option = error.option
    if error.code == "unknown_option":
        label = f"Параметр «{error.value or option}»"
        allowed = "доступны " + ", ".join(f"--{name}" for name in OPTION_NAMES)
    else:
        label = OPTION_LABELS.get(option, f"Параметр --{option}")
        if option in OPTION_NAMES:
            label = f"Параметр {label}"
        allowed = allowed_range(option, limits, max_prompt_chars)
    lines = [f"❌ {label}: {_reason(error, limits)}."]
    if allowed and error.code != "empty_prompt":
        lines.append(f"Допустимо: {allowed}.")
    lines.append("Запрос не поставлен в очередь. Параметры и примеры — /help")
    return "\n".join(lines)
