# syntax=docker/dockerfile:1
# The bot and its model on one NVIDIA GPU:  docker compose up -d --build
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# torch first, from the CUDA 12.8 wheel index (the default index may pick another CUDA build).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "$TORCH_INDEX_URL" "torch>=2.7,<2.15"

WORKDIR /app
# Dependencies in their own layer: code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p bot pipeline && touch bot/__init__.py pipeline/__init__.py \
    && pip install -e ".[lora]"
COPY pipeline ./pipeline
COPY bot ./bot

# A non-root user owns only what it writes: the database/videos and the model cache.
RUN useradd --create-home --uid 10001 bot \
    && mkdir -p /app/data /cache/huggingface \
    && chown -R bot:bot /app/data /cache/huggingface
USER bot
VOLUME ["/app/data", "/cache/huggingface"]

# SIGTERM stops polling, leaves the running job for the next start, and exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
