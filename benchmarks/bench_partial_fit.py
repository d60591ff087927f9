"""(h) partial_fit: passes over 10 chunks against fit on the whole data set (issue 12).

For P1 (200,000 x 100, 10 classes, standardized; benchmarks/problems.py) and the
scaled problem (20,000 x 50, 5 classes, features scaled by 1e-3 .. 1e3), split in 10
chunks of consecutive rows, and for P1 sorted by class (so that each of the first
chunks holds a single class): ``SoftmaxRegressor().partial_fit`` over the chunks, pass
after pass, 10 passes; after each pass the relative objective gap to the optimum
(``fit`` at tol=1e-8) and the time so far, beside the time of ``fit`` at its defaults.
Targets (issue 12, P1): one pass within 1e-2, ten passes within 1e-3.

Run: ``python -P benchmarks/bench_partial_fit.py [--quick]`` (``--quick``: 3 passes).
Writes ``results/partial_fit.md`` (``results/quick/partial_fit.md``).
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import busy_warning, machine_facts  # noqa: E402
from problems import make_problem, objective  # noqa: E402
from timing import markdown_table  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402


def run(X, y, n_chunks, n_passes):
    """Gaps and cumulative times after each pass, and the default fit's time."""
    optimum = objective(X, y, *_model(SoftmaxRegressor(tol=1e-8, max_iter=1000).fit(X, y)))
    start = time.perf_counter()
    SoftmaxRegressor().fit(X, y)
    fit_time = time.perf_counter() - start
    chunks = np.array_split(np.arange(len(y)), n_chunks)
    classes = np.unique(y)
    model = SoftmaxRegressor()
    gaps, times, elapsed = [], [], 0.0
    for p in range(n_passes):
        start = time.perf_counter()
        for i, rows in enumerate(chunks):
            model.partial_fit(X[rows], y[rows], classes=classes if p == i == 0 else None)
        elapsed += time.perf_counter() - start
        gaps.append((objective(X, y, *_model(model)) - optimum) / optimum)
        times.append(elapsed)
    return gaps, times, fit_time


def _model(model):
    return model.coef_, model.intercept_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_passes = 3 if args.quick else 10
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    warning = busy_warning()
    problems = []
    X, y = make_problem("P1")
    problems.append(("P1, 10 chunks", X, y))
    order = np.argsort(y, kind="stable")
    problems.append(("P1 sorted by class, 10 chunks", X[order], y[order]))
    X, y = make_problem("scaled")
    problems.append(("scaled (raw), 10 chunks", X, y))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partial_fit's per-call solves may warn
        for name, X, y in problems:
            gaps, times, fit_time = run(np.ascontiguousarray(X), y, 10, n_passes)
            print(name, gaps, flush=True)
            rows.append([name, f"{fit_time:.2f}"]
                        + [f"{g:.1e} ({t:.1f} s)" for g, t in zip(gaps, times)])
    p1 = rows[0]
    lines = [
        "# partial_fit against fit (benchmarks/bench_partial_fit.py)",
        "",
        *machine_facts(class_counts=[5, 10]),
        warning,
        "",
        "Relative objective gap to the optimum after each pass over the chunks (and the "
        "time of the passes so far), `SoftmaxRegressor()` at its defaults; `fit`: the "
        "time of `SoftmaxRegressor().fit` on the whole data set.",
        "",
        markdown_table(["problem", "fit (s)"] + [f"pass {p + 1}" for p in range(n_passes)],
                       rows),
        "",
        f"Targets (P1): one pass within 1e-2: {p1[2].split()[0]}; ten passes within 1e-3: "
        f"{p1[-1].split()[0] if n_passes >= 10 else '(run without --quick)'}.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "partial_fit.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
