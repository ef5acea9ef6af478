"""Dockerfile, compose file and pyproject.toml agree: one torch range, BuildKit pip caches, a
wheel install, a non-root user, the model cache as a volume, and /healthz as the health check.

No Docker engine is needed: the Dockerfile's own Python one-liners (which read pyproject.toml)
are run here against the real pyproject.toml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as in the image

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
COMPOSE = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def run_instructions() -> list[str]:
    """Each RUN instruction with its continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("RUN ")]


def snippets() -> list[str]:
    """The ``python -c '…'`` programs of the Dockerfile."""
    return re.findall(r"python -c '([^']+)'", DOCKERFILE)


def test_one_torch_range_declared_in_pyproject_only() -> None:
    torch = [d for d in PROJECT["dependencies"] if re.match(r"torch\b", d)]
    assert len(torch) == 1, torch
    assert not re.search(r"torch\s*[<>=~!]=?\s*\d", DOCKERFILE), "a torch version in Dockerfile"


def test_the_dockerfile_reads_torch_and_the_dependencies_from_pyproject(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    outputs = []
    for code in snippets():
        if "tomllib" not in code:
            continue
        code = code.replace("/tmp/pyproject.toml", str(tmp_path / "pyproject.toml"))
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        outputs.append(result.stdout.split())
    torch_only, everything = outputs
    assert torch_only == [
        d.replace(" ", "") for d in PROJECT["dependencies"] if d.startswith("torch")
    ]
    expected = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["lora"]
    assert everything == [d.replace(" ", "") for d in expected]


def test_base_image_does_not_ship_cuda_libraries() -> None:
    (base,) = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert "cudnn" not in base and "runtime" not in base and "devel" not in base, base
    assert base.startswith("python:") or re.match(r"nvidia/cuda:[\w.-]*-base-", base), base


def test_buildkit_pip_cache_on_every_pip_install_and_a_wheel_install() -> None:
    assert DOCKERFILE.startswith("# syntax=docker/dockerfile:1")
    installs = [run for run in run_instructions() if "pip install" in run]
    assert len(installs) >= 3
    for run in installs:
        assert "--mount=type=cache,target=/root/.cache/pip" in run, run
    assert "PIP_NO_CACHE_DIR" not in DOCKERFILE  # the cache mount keeps it out of the layers
    assert not re.search(r"pip install[^\n]*\s-e\s", DOCKERFILE)
    assert any("pip install --no-deps /src" in run for run in installs)


def test_non_root_with_model_cache_and_data_volumes() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "HF_HOME=/cache/huggingface" in DOCKERFILE
    assert re.search(r'^VOLUME .*"/cache/huggingface"', DOCKERFILE, flags=re.MULTILINE)
    assert "hf-cache:/cache/huggingface" in COMPOSE and "bot-data:/app/data" in COMPOSE


@pytest.mark.parametrize("text", [DOCKERFILE, COMPOSE], ids=["Dockerfile", "compose"])
def test_health_checks_ask_healthz(text: str) -> None:
    assert "bot.observability.probe" in text
    assert "METRICS_LISTEN" in text


def test_the_probe_module_runs_with_the_standard_library_only() -> None:
    source = (ROOT / "bot" / "observability" / "probe.py").read_text(encoding="utf-8")
    imported = set(re.findall(r"^(?:from|import)\s+([\w.]+)", source, flags=re.MULTILINE))
    assert imported <= {"__future__", "os", "sys", "urllib.error", "urllib.request"}, imported


def test_compose_scale_profile_runs_a_front_end_and_one_worker_per_gpu() -> None:
    """``docker compose --profile scale`` (README, "Many GPUs"): PostgreSQL, a front end without
    a GPU, and workers each pinned to its own GPU with its own id, all on the same queue."""
    import yaml  # PyYAML: a dependency of transformers and accelerate

    services = yaml.safe_load(COMPOSE)["services"]
    assert "profiles" not in services["bot"]  # `docker compose up` stays the one-command default
    scale = {name: s for name, s in services.items() if "scale" in s.get("profiles", [])}
    assert {"postgres", "frontend"} <= set(scale)
    frontend = scale["frontend"]
    assert frontend["environment"]["ROLE"] == "frontend"
    assert "deploy" not in frontend  # no GPU reserved for the Telegram side
    workers = {
        name: s for name, s in scale.items() if s.get("command") == ["python", "-m", "bot.worker"]
    }
    assert len(workers) >= 2
    gpus = [
        tuple(d["device_ids"])
        for s in workers.values()
        for d in s["deploy"]["resources"]["reservations"]["devices"]
    ]
    assert len(set(gpus)) == len(workers) and all(len(ids) == 1 for ids in gpus)
    assert len({s["environment"]["WORKER_ID"] for s in workers.values()}) == len(workers)
    urls = {s["environment"]["DATABASE_URL"] for s in [frontend, *workers.values()]}
    assert len(urls) == 1 and urls.pop().startswith("postgresql://")
