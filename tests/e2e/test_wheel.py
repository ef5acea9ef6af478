"""`pip install .` without `-e`: the wheel carries everything the bot reads at run time.

The test builds the wheel from a copy of the sources (``pip wheel --no-deps``, offline with the
setuptools already installed where there is one), installs it into a fresh virtual environment, and starts the
installed ``t2v-bot`` entry point against the fake Bot API with a tiny random Wan: the bot must
migrate its database (``bot/migrations/*.sql``), load the model, and answer /start in Russian
(``bot/locales/ru``: without the catalogue the answer would be the English msgids).

Dependencies are not downloaded again: the fresh environment holds only the wheel, and a
``.pth`` file puts the running environment's site-packages *after* it on ``sys.path`` (a
``.pth`` line is added as a plain path, so the editable install's import hook there is not
run). The test checks that every requirement the wheel declares is met from there, and that
``bot`` and ``pipeline`` are imported from the fresh environment, never from the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import site
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("bot", "pipeline", "pyproject.toml", "README.md")
PIP = (sys.executable, "-m", "pip", "-q", "--disable-pip-version-check")


def package_data() -> set[str]:
    """What the bot reads from its package at run time: migrations and text catalogues."""
    files = set()
    for folder in ("bot/migrations", "bot/locales"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".sql", ".po", ".pot"):
                files.add(path.relative_to(REPO).as_posix())
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of a copy of the sources (the checkout is not written to)."""
    root = tmp_path_factory.mktemp("wheel")
    src, dist = root / "src", root / "dist"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    # Offline with this environment's setuptools; where it has none (Python 3.12+ venvs), pip
    # fetches the build backend from PyPI as usual.
    offline = (
        ["--no-build-isolation", "--no-index"] if importlib.util.find_spec("setuptools") else []
    )
    result = subprocess.run(
        [*PIP, "wheel", "--no-deps", *offline, "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (built,) = dist.glob("ru_text2video_bot-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed (not editable); returns its root."""
    root = tmp_path_factory.mktemp("venv") / "env"
    venv.create(root, with_pip=False, symlinks=True)
    python = root / "bin" / "python"
    result = subprocess.run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "zz_dependencies.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    return root


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        and not key.startswith(("BOT_", "T2V_", "DEFAULT_", "MAX_", "METRICS_", "WEBHOOK_"))
    }
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def test_wheel_holds_migrations_locales_and_entry_point(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = package_data() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    assert any(n.startswith("bot/migrations/0001_") for n in names)
    assert any(n.startswith("bot/locales/ru/") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "migrations/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "t2v-bot = bot.__main__:cli" in text


CHECK_INSTALLED = r"""
import importlib.metadata as md, sys
from pathlib import Path
from packaging.requirements import Requirement
import bot, pipeline
root = Path(sys.prefix)
for module in (bot, pipeline):
    assert Path(module.__file__).is_relative_to(root), module.__file__
unmet = []
for line in md.requires("ru-text2video-bot") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # an optional extra
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        unmet.append(f"{req} (missing)")
        continue
    if not req.specifier.contains(version, prereleases=True):
        unmet.append(f"{req} (found {version})")
assert not unmet, unmet
print("ok", bot.__file__)
"""


def test_installed_wheel_is_importable_with_its_dependencies(fresh_env: Path) -> None:
    result = subprocess.run(
        [str(fresh_env / "bin" / "python"), "-c", CHECK_INSTALLED],
        cwd=fresh_env,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok ")


async def test_installed_t2v_bot_answers_start(
    fresh_env: Path, tiny_wan_dir: Path, tg: FakeTelegram, tmp_path: Path
) -> None:
    """The console script of the installed wheel, with a real (tiny) model, answers /start."""
    import asyncio

    run_dir = tmp_path / "run"  # no .env, no checkout on the path
    run_dir.mkdir()
    env = clean_env(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        DATABASE_PATH=str(run_dir / "data" / "bot.sqlite3"),
        VIDEO_DIR=str(run_dir / "data" / "videos"),
        T2V_MODEL=str(tiny_wan_dir),
        TRANSLATOR_MODEL="none",
        DEVICE="cpu",
        COMPILE="off",
        POLLING_TIMEOUT="1",
    )
    check = await asyncio.create_subprocess_exec(
        str(fresh_env / "bin" / "t2v-bot"),
        "--check",
        cwd=run_dir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await asyncio.wait_for(check.communicate(), 120))[0].decode()
    assert check.returncode == 0, out
    # One migration per number (a ``.postgres.sql`` file overrides its number on PostgreSQL only).
    migrations = len({p.name[:4] for p in (REPO / "bot" / "migrations").glob("*.sql")})
    assert f"is created at start ({migrations} migrations)" in out, out  # read from the wheel
    log = (run_dir / "bot.log").open("w")
    proc = subprocess.Popen(  # noqa: ASYNC220 - the installed program, as an operator runs it
        [str(fresh_env / "bin" / "t2v-bot")],
        cwd=run_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.monotonic()
        while not tg.calls_of("getUpdates"):
            assert proc.poll() is None, (run_dir / "bot.log").read_text()[-4000:]
            assert time.monotonic() - started < 240, "the bot did not start polling"
            await asyncio.sleep(0.2)
        request = tg.push_message("/start", user_id=4242)

        def reply() -> str | None:
            for message in tg.sent(4242):
                if message.text:
                    return message.text
            return None

        text = await tg.wait_for(reply, timeout=60)
        assert any("а" <= ch <= "я" for ch in text.lower()), text  # the Russian catalogue
        assert request["message_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
    output = (run_dir / "bot.log").read_text()
    assert code == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert (run_dir / "data" / "bot.sqlite3").is_file()
