"""The /stats chart: jobs per hour and generation time over the last days, as a PNG.

The data comes bucketed from :meth:`bot.storage.jobs.JobStore.hourly`. matplotlib is slow to import and
to draw, so the bot calls :func:`render_chart`, which does the work in a thread
(``asyncio.to_thread``) and never blocks the event loop. The Agg backend is used: the bot runs
headless, and a ``Figure`` made directly (not through ``pyplot``) keeps no global state between
threads.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import datetime, timezone

HOUR = 3600.0
DEFAULT_DAYS = 7

# (hour start in UNIX seconds, jobs created that hour, mean generation seconds or None)
Bucket = tuple[float, int, float | None]


def render_chart_png(
    buckets: Sequence[Bucket], labels: dict[str, str], days: int = DEFAULT_DAYS
) -> bytes:
    """Blocking: draw jobs per hour (bars) above mean generation time (line); PNG bytes.
    ``labels`` are the words in the reader's language (``bot.texts.admin.chart_labels``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stamps = [datetime.fromtimestamp(b[0], tz=timezone.utc) for b in buckets]
    counts = [b[1] for b in buckets]
    figure = Figure(figsize=(9, 5), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.bar(stamps, counts, width=1 / 24, align="edge", color="#4c72b0")
    top.set_ylabel(labels["jobs"])
    top.set_title(labels["title"])
    top.grid(True, alpha=0.3)
    points = [(s, b[2]) for s, b in zip(stamps, buckets, strict=True) if b[2] is not None]
    if points:
        xs, ys = zip(*points, strict=True)
        bottom.plot(xs, ys, marker="o", markersize=3, linestyle="-", color="#dd8452")
    else:
        bottom.text(0.5, 0.5, labels["empty"], ha="center", va="center", transform=bottom.transAxes)
    bottom.set_ylabel(labels["seconds"])
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_chart(
    buckets: Sequence[Bucket], labels: dict[str, str], days: int = DEFAULT_DAYS
) -> bytes:
    """The chart as PNG bytes, drawn in a worker thread."""
    data = [(float(b[0]), int(b[1]), None if b[2] is None else float(b[2])) for b in buckets]
    return await asyncio.to_thread(render_chart_png, data, labels, days)
