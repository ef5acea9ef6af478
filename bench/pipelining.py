"""Generation-loop utilisation: does the loop start the next job while the previous video uploads?

The real bot (``bot.__main__.build_app``, in this process) polls the fake Bot API
(``tests.fakes.telegram`` in its own process on 127.0.0.1). Every ``sendVideo`` is answered only
after ``--upload-s`` seconds (a slow upload), every other call after ``--api-latency`` seconds
(a round trip to Telegram), so a Telegram call awaited on the loop's critical path would show.
``--jobs`` users each send one request at the same moment; every job renders for ``--gen-s``
seconds on a :func:`bench.bot_tools.burn_backend` (CPU work in the worker thread, half of it
holding the GIL).

Definitions (all from ``time.monotonic``, system-wide on Linux, so the bot's and the server's
marks share one clock):

* ``gen_i`` = end − start of job *i*'s ``backend.run`` (measured inside the worker thread);
* ``setup`` = first job's update delivered by getUpdates → first ``run`` starts;
* ``busy`` = first ``run`` starts → last ``run`` ends;
* ``idle`` = busy − Σ gen_i = Σ gaps between one run's end and the next run's start: the time
  the generation loop (the GPU) sat idle although jobs were waiting;
* ``tail`` = last ``run`` ends → its ``sendVideo`` answered (the last upload, which nothing can hide);
* ``wall`` = first update delivered → last ``sendVideo`` answered = setup + Σ gen + idle + tail.

The figure is ``idle / busy`` (target ≤ 5 %), reported beside ``wall`` against the serial
counterfactual ``setup + Σ gen + Σ upload`` (a loop that awaited each upload).

    python bench/pipelining.py --out bench/results/pipelining.json        # ~1 min
    python bench/pipelining.py --quick --out /tmp/bench-pipelining.json   # CI smoke, < 30 s
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bot_tools import FakeTelegramProcess, bench_bot, burn_backend
from bench.report import JsonReport, fmt, light_machine_info, log, run_timed, spread

TARGET = 0.05
STEP_SECONDS = 0.1


async def run_once(args: argparse.Namespace) -> dict[str, Any]:
    backend = burn_backend(step_seconds=STEP_SECONDS, gil_share=args.gil_share)
    steps = max(1, round(args.gen_s / STEP_SECONDS))
    plan = [[0.0, 7000 + i, f"/generate собака бежит по пляжу, вариант {i} --steps {steps}"]
            for i in range(args.jobs)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as tmp:
        async with FakeTelegramProcess() as tg:
            await tg.request("slow", method="sendVideo", seconds=args.upload_s)
            if args.api_latency > 0:  # after sendVideo's: only the first matching delay applies
                await tg.request("slow", method="*", seconds=args.api_latency)
            async with bench_bot(tg, backend, tmp):
                pushed = (await tg.request("push_many", schedule=plan))["pushed"]
                budget = args.jobs * (args.gen_s + args.upload_s) * 3 + 30
                done = (
                    await tg.request("wait", method="sendVideo", count=args.jobs, timeout=budget)
                )["count"]
                report = await tg.request("report")

    runs = sorted(backend.spans)
    delivered = report["delivered"]
    first_update = min(
        delivered[str(p["update_id"])] for p in pushed if str(p["update_id"]) in delivered
    )
    videos = sorted(
        (c for c in report["calls"] if c["method"] == "sendVideo" and c["answered"] is not None),
        key=lambda c: c["answered"],
    )
    uploads = [c["answered"] - c["time"] for c in videos]
    gens = [end - start for start, end in runs]
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(runs)]
    setup = runs[0][0] - first_update
    busy = runs[-1][1] - runs[0][0]
    gen_sum = sum(gens)
    idle = busy - gen_sum
    tail = videos[-1]["answered"] - runs[-1][1]
    wall = videos[-1]["answered"] - first_update
    serial = setup + gen_sum + sum(uploads)
    return {
        "jobs": args.jobs,
        "delivered": done,
        "runs": len(runs),
        "wall_s": wall,
        "setup_s": setup,
        "busy_s": busy,
        "gen_sum_s": gen_sum,
        "idle_s": idle,
        "tail_s": tail,
        "idle_share": idle / busy if busy > 0 else None,
        "meets_target": busy > 0 and idle / busy <= TARGET,
        "check_wall_minus_parts_s": wall - setup - gen_sum - idle - tail,  # 0 by construction
        "gaps_ms": [round(g * 1000, 2) for g in gaps],
        "gap_median_ms": sorted(gaps)[len(gaps) // 2] * 1000 if gaps else None,
        "gap_max_ms": max(gaps) * 1000 if gaps else None,
        "gen_median_s": sorted(gens)[len(gens) // 2],
        "upload_median_s": sorted(uploads)[len(uploads) // 2] if uploads else None,
        "upload_sum_s": sum(uploads),
        "serial_counterfactual_s": serial,
        "speedup_vs_serial": serial / wall if wall > 0 else None,
    }


async def main_async(args: argparse.Namespace, report: JsonReport) -> int:
    runs = []
    for repeat in range(args.repeats):
        log(f"repeat {repeat + 1}/{args.repeats}: {args.jobs} jobs x {args.gen_s} s render,"
            f" sendVideo {args.upload_s} s, other calls {args.api_latency * 1000:.0f} ms")  # fmt: skip
        entry = await run_once(args)
        runs.append(entry)
        report["runs"] = runs
        log(
            f"  wall {entry['wall_s']:.2f} s = setup {entry['setup_s']:.3f} + gen {entry['gen_sum_s']:.2f}"
            f" + idle {entry['idle_s']:.3f} + tail {entry['tail_s']:.2f};"
            f" idle share {entry['idle_share'] * 100:.2f} % (gaps median {fmt(entry['gap_median_ms'], '.1f')} ms,"
            f" max {fmt(entry['gap_max_ms'], '.1f')} ms); serial would take"
            f" {entry['serial_counterfactual_s']:.2f} s (x{entry['speedup_vs_serial']:.2f})"
        )
    summary = {
        "idle_share": spread([r["idle_share"] for r in runs]),
        "wall_s": spread([r["wall_s"] for r in runs]),
        "gen_sum_s": spread([r["gen_sum_s"] for r in runs]),
        "idle_s": spread([r["idle_s"] for r in runs]),
        "gap_max_ms": spread([r["gap_max_ms"] for r in runs]),
        "tail_s": spread([r["tail_s"] for r in runs]),
        "serial_counterfactual_s": spread([r["serial_counterfactual_s"] for r in runs]),
        "all_delivered": all(r["delivered"] == r["jobs"] for r in runs),
    }
    summary["meets_target"] = (summary["idle_share"]["median"] or 1.0) <= TARGET
    report["summary"] = summary
    s = summary["idle_share"]
    log(
        f"idle share median {s['median'] * 100:.2f} % (min {s['min'] * 100:.2f}, max {s['max'] * 100:.2f},"
        f" {s['n']} runs), target <= {TARGET * 100:.0f} %: {summary['meets_target']};"
        f" every video delivered: {summary['all_delivered']}"
    )
    return 0 if summary["all_delivered"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/pipelining.json"))
    parser.add_argument("--quick", action="store_true", help="CI smoke: 4 jobs x 1 s, one run")
    parser.add_argument("--jobs", type=int, default=None, help="default 10")
    parser.add_argument(
        "--gen-s", type=float, default=None, help="render seconds per job (default 1.5)"
    )
    parser.add_argument("--upload-s", type=float, default=1.0, help="seconds each sendVideo takes")
    parser.add_argument(
        "--api-latency", type=float, default=0.05, help="seconds every other call takes"
    )
    parser.add_argument("--gil-share", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=None, help="default 3")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (4 if args.quick else 10)
    args.gen_s = args.gen_s or (1.0 if args.quick else 1.5)
    args.repeats = args.repeats or (1 if args.quick else 3)
    report = JsonReport(
        args.out,
        benchmark="pipelining",
        command="python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        machine=light_machine_info(),
        target=f"idle / busy <= {TARGET}",
        settings={
            "jobs": args.jobs,
            "gen_s": args.gen_s,
            "upload_s": args.upload_s,
            "api_latency_s": args.api_latency,
            "gil_share": args.gil_share,
            "repeats": args.repeats,
            "bot": "build_app in this process, production cadences, INFO logging to a file;"
            " one request per user, all sent at once",
        },
        definitions={
            "setup": "first update delivered -> first backend.run starts",
            "busy": "first backend.run starts -> last backend.run ends",
            "idle": "busy - sum(gen) = sum of gaps between a run's end and the next run's start",
            "tail": "last backend.run ends -> its sendVideo answered",
            "wall": "first update delivered -> last sendVideo answered = setup + sum(gen) + idle + tail",
            "idle_share": "idle / busy",
            "serial_counterfactual": "setup + sum(gen) + sum(upload): a loop awaiting each upload",
        },
    )
    return run_timed(main_async, args, report)


if __name__ == "__main__":
    raise SystemExit(main())
