"""How long the prompt improver takes and how often it falls back, on this machine.

    python bench/prompt_improver.py [--model ID_OR_DIR] [--device auto|cpu|cuda] [--runs N]

``--model`` defaults to ``PROMPT_MODEL``; without one a tiny random Qwen2 is built (its figures
only prove the script runs). Prints, per request of a small Russian corpus: seconds, new tokens,
tokens per second, why generation stopped and whether the output was used (or the reason it was
refused), then the medians and the fallback rate. A real model's figures decide
``PROMPT_TIMEOUT`` / ``PROMPT_MAX_TOKENS`` and whether ``PROMPT_DEVICE=cpu`` is fast enough.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REQUESTS = [
    "кот играет на пианино",
    "закат над морем, чайки",
    "робот танцует под дождём в неоновом городе",
    "девочка запускает воздушного змея в поле, мультяшный стиль",
    "a dragon flying over snowy mountains",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("PROMPT_MODEL") or "")
    parser.add_argument("--device", default=os.environ.get("PROMPT_DEVICE") or "auto")
    parser.add_argument("--runs", type=int, default=1, help="passes over the corpus")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    from pipeline.improve import PromptImprover

    model = args.model
    if not model:
        from tests.fakes.tiny_qwen import build_tiny_qwen

        model = str(build_tiny_qwen(Path(tempfile.mkdtemp()) / "tiny-qwen"))
        print("no --model / PROMPT_MODEL: a tiny random Qwen2 (figures prove nothing)")
    start = time.perf_counter()
    improver = PromptImprover.load(
        model, args.device, max_new_tokens=args.max_tokens, timeout=args.timeout
    )
    print(f"model {model} on {improver.device}: loaded in {time.perf_counter() - start:.1f} s")
    seconds, rates, used = [], [], 0
    for _ in range(args.runs):
        for request in REQUESTS:
            begin = time.perf_counter()
            result = improver.improve(request, lambda text: text)
            took = time.perf_counter() - begin
            tokens = improver.last_new_tokens
            seconds.append(took)
            rates.append(tokens / took if took else 0.0)
            used += result.improved
            print(
                f"{took:6.2f} s {tokens:4d} tok {tokens / took if took else 0:7.1f} tok/s "
                f"stop={improver.last_stop:<6} {result.reason:<12} {request!r}"
            )
            if result.improved:
                print(f"    → {result.text}")
    total = len(seconds)
    print(
        f"median {statistics.median(seconds):.2f} s, {statistics.median(rates):.1f} tok/s; "
        f"used {used}/{total}, fallback rate {(total - used) / total:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
