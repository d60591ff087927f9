"""Wall-clock timing: the median of several runs after a warm-up, and markdown tables."""

import statistics
import time


def median_time(fn, repeats, warmup=1, min_seconds=0.0, max_repeats=100):
    """Median wall-clock seconds of ``fn()`` (``time.perf_counter``).

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeats : int
        Timed runs, at least 1.
    warmup : int, default=1
        Untimed runs first (caches, thread pools, lazy imports).
    min_seconds : float, default=0.0
        Run more than ``repeats`` times, up to ``max_repeats``, until the timed runs
        add up to this: a median of 3 runs of 50 microseconds is mostly noise.

    Returns
    -------
    seconds : float
    """
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown_table(header, rows):
    """A markdown table (a string) from a header and rows of cells, each made a str."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, rows)])


def ms(seconds):
    """Seconds as milliseconds with 3 significant digits, or "-" for None."""
    if seconds is None:
        return "-"
    value = seconds * 1e3
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def ratio(numerator, denominator, lower_bound=False):
    """``numerator / denominator`` as "12.3x" (">= 12.3x" for a lower bound), or "-"."""
    if numerator is None or denominator is None or denominator <= 0:
        return "-"
    return f"{'>= ' if lower_bound else ''}{numerator / denominator:.3g}x"
