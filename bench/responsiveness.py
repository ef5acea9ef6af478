"""Bot responsiveness while a long generation runs: update → reply latency and event-loop lag.

The real bot (``bot.__main__.build_app``, the code ``python -m bot`` runs, in this process)
polls the fake Bot API (``tests.fakes.telegram``), which runs in *its own process* on 127.0.0.1,
so the server's work never counts as the bot's loop lag. A long job renders on a
:func:`bench.bot_tools.burn_backend`: its worker thread keeps one core busy, part of the time with
numpy work that releases the GIL (as torch kernels do) and part with pure Python that holds it
(as a pipeline's Python glue does; ``--gil-share``). It simulates the CPU/GIL pressure of a model
thread, not a GPU, memory traffic or a real model's exact GIL pattern.

While it renders, ``--users`` users send ``--commands`` commands (``/queue``, ``/help`` and new
requests, which are really queued: an SQLite insert each) at random times over ``--window``
seconds (open loop: send times do not wait for replies). Measured, all on the fake server's
clock except the lag:

* reply latency: from the moment the update left the server in a getUpdates answer to the
  moment the bot's reply call (``sendMessage``) arrived at the server; a request is matched to
  the reply that quotes it (``reply_parameters``), ``/queue`` and ``/help`` to the next
  unquoting reply in the same chat (first in, first out);
* event-loop lag: a task inside the bot's process sleeps 10 ms over and over and records the
  overshoot of each wake-up, during the load window only.

Scenarios: ``idle`` (no generation, the loop paused: the floor), ``burn`` (the long job, ``--gil-share``, 0.5 by
default), ``burn-gil`` (a worker thread that wants the GIL all the time: the worst case).
Targets: reply p99 < 300 ms, loop lag p99 < 50 ms (both for ``burn``).

    python bench/responsiveness.py --out bench/results/responsiveness.json   # ~2 min
    python bench/responsiveness.py --quick --out /tmp/bench-responsiveness.json  # CI smoke, < 30 s
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bot_tools import FakeTelegramProcess, LoopLagProbe, bench_bot, burn_backend, wait_until
from bench.report import JsonReport, fmt, light_machine_info, log, percentile, run_timed, spread

REPLY_TARGET_MS = 300.0
LAG_TARGET_MS = 50.0
LONG_JOB_USER = 999
KINDS = (("queue", 0.4), ("help", 0.3), ("request", 0.3))
SCENARIOS = {
    "idle": None,  # no generation: the loop is paused (/pause), requests stay queued
    "burn": "gil_share",  # --gil-share
    "burn-gil": 1.0,
}


def schedule(users: int, commands: int, window: float, seed: int) -> list[list[Any]]:
    """``[offset, user_id, text]`` for each command, random times over ``window``."""
    rng = random.Random(seed)
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    out = []
    for i in range(commands):
        user = 5000 + i % users
        kind = rng.choices(kinds, weights)[0]
        text = {
            "queue": "/queue",
            "help": "/help",
            "request": f"/generate кот играет на пианино, вариант {i} --steps 4",
        }[kind]
        out.append([round(rng.uniform(0, window), 4), user, text])
    return out


def kind_of(text: str) -> str:
    return {"/queue": "queue", "/help": "help"}.get(text.split()[0], "request")


def match_replies(report: dict[str, Any], pushed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Latency (s) per pushed command, None where no reply came."""
    delivered = {int(k): v for k, v in report["delivered"].items()}
    replies = [c for c in report["calls"] if c["method"] == "sendMessage" and c["status"] == 200]
    quoted: dict[tuple[int, int], float] = {}
    plain: dict[int, list[float]] = {}
    for call in sorted(replies, key=lambda c: c["time"]):
        if call["reply_to"] is not None:
            quoted.setdefault((call["chat_id"], call["reply_to"]), call["time"])
        else:
            plain.setdefault(call["chat_id"], []).append(call["time"])
    results = []
    for record in sorted(pushed, key=lambda r: r["pushed"]):
        kind = kind_of(record["text"])
        sent = delivered.get(record["update_id"])
        reply = None
        if kind == "request":
            reply = quoted.get((record["chat_id"], record["message_id"]))
        else:
            queue = plain.get(record["chat_id"], [])
            while queue and sent is not None and queue[0] < sent:
                queue.pop(0)  # an earlier command's reply, or unrelated
            reply = queue.pop(0) if queue else None
        results.append(
            {
                "kind": kind,
                "user_id": record["user_id"],
                "offset": record["offset"],
                "queue_wait_s": (sent - record["pushed"]) if sent is not None else None,
                "latency_s": (reply - sent) if reply is not None and sent is not None else None,
            }
        )
    return results


async def run_once(
    scenario: str, gil_share: float | None, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    backend = burn_backend(step_seconds=0.1, gil_share=gil_share if gil_share is not None else 0)
    plan = schedule(args.users, args.commands, args.window, seed)
    probe = LoopLagProbe(0.01)
    with tempfile.TemporaryDirectory(prefix="bench-resp-") as tmp:
        async with (
            FakeTelegramProcess() as tg,
            # every request is really queued (an insert), none refused by a per-user limit
            bench_bot(tg, backend, tmp, max_active_jobs_per_user=1000, max_queue=10000) as app,
        ):
            try:
                probe.start()
                if gil_share is None:
                    app.loop.pause()  # idle: the queued requests are not rendered either
                else:
                    steps = 200  # 20 s of rendering: longer than the window and the drain
                    await tg.request(
                        "push",
                        user_id=LONG_JOB_USER,
                        text=f"/generate длинный рендер --steps {steps}",
                    )
                    await wait_until(lambda: backend.steps_done >= 2, timeout=10)
                before = (await tg.request("count", method="sendMessage"))["count"]
                steps_before, t0 = backend.steps_done, time.monotonic()
                probe.recording = True
                pushed = (await tg.request("push_many", schedule=plan))["pushed"]
                await tg.request(
                    "wait", method="sendMessage", count=before + len(plan), timeout=args.drain
                )
                probe.recording = False
                render_rate = (backend.steps_done - steps_before) / (time.monotonic() - t0)
                report = await tg.request("report")
                queued = await app.jobs.count_queued()
            finally:
                probe.recording = False
                await probe.stop()
    results = match_replies(report, pushed)
    latencies = [r["latency_s"] * 1000 for r in results if r["latency_s"] is not None]
    missing = sum(1 for r in results if r["latency_s"] is None)
    per_kind = {}
    for kind, _ in KINDS:
        values = [
            r["latency_s"] * 1000
            for r in results
            if r["kind"] == kind and r["latency_s"] is not None
        ]
        per_kind[kind] = {
            "n": len(values),
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
        }
    lag = probe.summary()
    return {
        "scenario": scenario,
        "gil_share": gil_share,
        "seed": seed,
        "commands": len(plan),
        "replied": len(latencies),
        "missing": missing,
        "requests_sent": sum(1 for r in results if r["kind"] == "request"),
        "requests_queued_in_db": queued,
        "reply_p50_ms": percentile(latencies, 50),
        "reply_p99_ms": percentile(latencies, 99),
        "reply_max_ms": max(latencies) if latencies else None,
        "per_kind": per_kind,
        "loop_lag": lag,
        "render_steps_per_s_during_load": round(render_rate, 2) if gil_share is not None else None,
        "render_steps_per_s_nominal": 10.0 if gil_share is not None else None,
    }


async def main_async(args: argparse.Namespace, report: JsonReport) -> int:
    scenarios = args.scenarios.split(",")
    runs = []
    for repeat in range(args.repeats):
        for scenario in scenarios:
            value = SCENARIOS[scenario]
            gil_share = args.gil_share if value == "gil_share" else value
            log(f"[{scenario}] repeat {repeat + 1}/{args.repeats}")
            entry = await run_once(scenario, gil_share, args, seed=args.seed + repeat)
            runs.append(entry)
            report["runs"] = runs
            log(
                f"  replies {entry['replied']}/{entry['commands']},"
                f" p50 {fmt(entry['reply_p50_ms'], '.1f')} ms, p99 {fmt(entry['reply_p99_ms'], '.1f')} ms,"
                f" max {fmt(entry['reply_max_ms'], '.1f')} ms; loop lag p50"
                f" {fmt(entry['loop_lag']['p50_ms'], '.2f')} ms, p99 {fmt(entry['loop_lag']['p99_ms'], '.1f')} ms,"
                f" max {fmt(entry['loop_lag']['max_ms'], '.1f')} ms"
                + (
                    f"; render {entry['render_steps_per_s_during_load']} steps/s (nominal 10)"
                    if entry["render_steps_per_s_during_load"] is not None
                    else ""
                )
            )
    summary = {}
    for scenario in scenarios:
        mine = [r for r in runs if r["scenario"] == scenario]
        summary[scenario] = {
            "reply_p50_ms": spread([r["reply_p50_ms"] for r in mine]),
            "reply_p99_ms": spread([r["reply_p99_ms"] for r in mine]),
            "loop_lag_p99_ms": spread([r["loop_lag"]["p99_ms"] for r in mine]),
            "missing_replies": sum(r["missing"] for r in mine),
        }
    report["summary"] = summary
    log("")
    log(
        "scenario   runs  reply p50 ms (min-max)   reply p99 ms (min-max)   loop lag p99 ms (min-max)"
    )
    for scenario, s in summary.items():

        def cell(d: dict[str, Any], spec: str = ".1f") -> str:
            return f"{fmt(d['median'], spec)} ({fmt(d['min'], spec)}-{fmt(d['max'], spec)})"

        log(
            f"{scenario:<10} {s['reply_p50_ms']['n']:>4}  {cell(s['reply_p50_ms']):<24} "
            f"{cell(s['reply_p99_ms']):<24} {cell(s['loop_lag_p99_ms'])}"
        )
    key = "burn" if "burn" in summary else scenarios[0]
    s = summary[key]
    verdict = {
        "scenario": key,
        "reply_p99_ms": s["reply_p99_ms"]["median"],
        "loop_lag_p99_ms": s["loop_lag_p99_ms"]["median"],
        "reply_target_met": (s["reply_p99_ms"]["median"] or 1e9) < REPLY_TARGET_MS,
        "lag_target_met": (s["loop_lag_p99_ms"]["median"] or 1e9) < LAG_TARGET_MS,
        "no_missing_replies": s["missing_replies"] == 0,
    }
    report["verdict"] = verdict
    log(
        f"target ({key}): reply p99 < {REPLY_TARGET_MS:.0f} ms: {verdict['reply_target_met']},"
        f" loop lag p99 < {LAG_TARGET_MS:.0f} ms: {verdict['lag_target_met']},"
        f" every command answered: {verdict['no_missing_replies']}"
    )
    return 0 if all(s["missing_replies"] == 0 for s in summary.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/responsiveness.json"))
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke: burn only, 5 users, 40 commands"
    )
    parser.add_argument("--users", type=int, default=None, help="default 20")
    parser.add_argument("--commands", type=int, default=None, help="default 200")
    parser.add_argument(
        "--window", type=float, default=None, help="seconds to send over (default 4)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="default 3")
    parser.add_argument("--scenarios", default=None, help="comma list of idle, burn, burn-gil")
    parser.add_argument(
        "--gil-share", type=float, default=0.5, help="share of the worker's time holding the GIL"
    )
    parser.add_argument(
        "--drain", type=float, default=20.0, help="seconds to wait for the last replies"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval in the bot's process (Python's default: 0.005 s)",
    )
    args = parser.parse_args(argv)
    args.users = args.users or (5 if args.quick else 20)
    args.commands = args.commands or (40 if args.quick else 200)
    args.window = args.window or (2.0 if args.quick else 4.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.scenarios = args.scenarios or ("burn" if args.quick else "idle,burn,burn-gil")
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}")
    report = JsonReport(
        args.out,
        benchmark="responsiveness",
        command="python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        machine=light_machine_info(),
        targets={"reply_p99_ms": f"< {REPLY_TARGET_MS}", "loop_lag_p99_ms": f"< {LAG_TARGET_MS}"},
        settings={
            "users": args.users,
            "commands": args.commands,
            "window_s": args.window,
            "repeats": args.repeats,
            "mix": dict(KINDS),
            "gil_share": args.gil_share,
            "long_job": "200 steps x 0.1 s of burn backend CPU work in the worker thread",
            "bot": "build_app in this process; production cadences (status 3 s, queue refresh 10 s,"
            " long poll 10 s); INFO logging to a file; per-user job limit lifted so every request is queued",
            "fake_bot_api": "tests.fakes.telegram.FakeTelegram in a child process on 127.0.0.1",
        },
        definitions={
            "reply_latency": "server clock: update left in a getUpdates answer -> the bot's sendMessage"
            " reply arrived (requests: the reply quoting them; /queue, /help: next unquoting reply"
            " in the chat, FIFO)",
            "loop_lag": "overshoot of a 10 ms asyncio.sleep in a task of the bot's process, load window only",
        },
    )
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    report["switch_interval_s"] = sys.getswitchinterval()
    return run_timed(main_async, args, report)


if __name__ == "__main__":
    raise SystemExit(main())
