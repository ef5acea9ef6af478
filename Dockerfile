# syntax=docker/dockerfile:1
# The bot and its model on one NVIDIA GPU:  docker compose up -d --build
#
# Base: python:3.11-slim, no CUDA toolkit. torch's CUDA wheels bring their own CUDA runtime,
# cuBLAS, cuDNN, NCCL, cuFFT… (the nvidia-* packages pip installs with them), and the NVIDIA
# Container Toolkit mounts the host's driver (libcuda) at run time; an nvidia/cuda *-runtime
# base would ship the same libraries a second time (docs/deployment.md, "Image size").
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    METRICS_LISTEN=0.0.0.0:9464

RUN python -m venv /opt/venv
WORKDIR /app

# 1. torch from the CUDA 12.8 wheel index, in the one range pyproject.toml declares (read from
#    it here, so the two can never disagree). Its own layer: the largest, and the rarest to change.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN --mount=type=bind,source=pyproject.toml,target=/tmp/pyproject.toml \
    --mount=type=cache,target=/root/.cache/pip \
    torch_req="$(python -c 'import tomllib; deps = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]; print(next(d for d in deps if d.replace(" ", "").startswith("torch>")))')" \
    && echo "installing $torch_req from $TORCH_INDEX_URL" \
    && pip install --index-url "$TORCH_INDEX_URL" "$torch_req"

# 2. The other dependencies (and the LoRA extra of the fast tier), from pyproject.toml only:
#    a code change does not reinstall them.
RUN --mount=type=bind,source=pyproject.toml,target=/tmp/pyproject.toml \
    --mount=type=cache,target=/root/.cache/pip \
    python -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["lora"]))' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 3. The bot itself, as a wheel (`pip install .`, not -e): the sources are bind-mounted for the
#    build and never become a layer; migrations and text catalogues travel as package data.
RUN --mount=type=bind,target=/src,rw \
    --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps /src \
    && python -c "import bot.storage.db as d, bot.i18n as i; assert d.discover(d.DEFAULT_MIGRATIONS_DIR); assert i.locales_dir().is_dir()"

# A non-root user owns only what it writes: the database/videos and the model cache.
RUN useradd --create-home --uid 10001 bot \
    && mkdir -p /app/data /cache/huggingface \
    && chown -R bot:bot /app/data /cache/huggingface
USER bot
VOLUME ["/app/data", "/cache/huggingface"]
EXPOSE 9464

# /healthz on METRICS_LISTEN (bot/observability/health.py): the database answers, the generation
# loop is alive and not stuck, updates arrive. The start period covers a first start that
# downloads the model (~30 GB for Wan 2.1 1.3B); later starts load it from the cache volume.
HEALTHCHECK --interval=30s --timeout=15s --start-period=20m --retries=3 \
    CMD ["python", "-m", "bot.observability.probe"]

# SIGTERM stops polling, leaves the running job for the next start, and exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
