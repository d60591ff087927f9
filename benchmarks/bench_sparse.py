"""(e) Sparse problems (issue 10): text, hashed and one-hot data, against every
scikit-learn solver.

Problems:

- ``debian``: the Debian package descriptions corpus of ``../shared/data/`` (its README
  says where the data come from and how to regenerate them): the package name and its
  description, ``TfidfVectorizer(min_df=2, sublinear_tf=True)``, the sections with at
  least 200 packages (62,226 x 43,131, 2.66 M non-zeros, 43 classes). Where the file is
  absent the problem is skipped, and the run says so.
- ``hashed``: 100,000 rows, 2**18 columns, about 50 non-zeros per row in Zipf-distributed
  columns, 20 classes, labels from a planted sparse model.
- ``onehot``: 500,000 rows, 20 categorical columns of 1,000 levels each (one-hot: 20,000
  columns), 5 classes, labels from a planted model.

For each problem, with BLAS at one thread:

- **Default fits**: ``SoftmaxRegressor()``, ``LogisticRegression()`` (lbfgs) and
  ``LogisticRegression(solver="saga")``, each timed once (these fits take seconds to
  minutes), with the final objective ``C sum_i CE_i + ||W||^2 / 2`` and its gap to the
  least objective any run reached (``F_best``).
- **Peak memory**: the default fits of ``SoftmaxRegressor()`` and
  ``LogisticRegression()`` again, each in a fresh process: how much the fit raised the
  process's peak resident memory above what it held before (X included there), on
  Linux; elsewhere the peak tracemalloc saw.
- **Our solvers**: ``SoftmaxRegressor(solver=...)`` with lbfgs, newton-cg and sag, each
  at tol 1e-4 and 1e-6, and which one ``solver="auto"`` runs: the measurements behind
  its rule.
- **Time to a gap**: each solver's fits along a ladder -- softmaxreg at tol = 1e-2,
  1e-3, ..., 1e-10; scikit-learn's saga, sag, lbfgs and newton-cg at max_iter = 1, 2,
  4, ... with tol = 0 -- until its relative gap ``(F - F_best) / F_best`` is below
  1e-6, or its fits have taken the budget (``BUDGET`` seconds; a solver that has not
  reached a gap by then is reported as taking more than the time it spent). The time
  to a gap is the fastest fit of the ladder that reached it. One plot per problem,
  ``sparse_<problem>.png``: gap against time.

Targets (issue 10), ratios from the run: the default fit at least 10x faster than
``LogisticRegression()`` with an objective no worse; time to a 1e-4 and to a 1e-6 gap
at least 3x faster than the fastest scikit-learn solver; peak memory below
``LogisticRegression()``'s.

Run: ``python -P benchmarks/bench_sparse.py [--problems debian,hashed,onehot] [--quick]``
(about 40 minutes on 2 cores; ``--quick``: 10x fewer rows, a few minutes). Writes
``results/sparse.md`` and the plots (``results/quick/`` with ``--quick``).
"""

import argparse
import csv
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import markdown_table  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "data" / "debian_descriptions.tsv.gz"
GAPS = (1e-4, 1e-6)
# Seconds of fits per solver's ladder, at most (quick, full).
BUDGET = {True: 30.0, False: 120.0}
OURS = "SoftmaxRegressor"
SKLEARN_SOLVERS = ("saga", "sag", "lbfgs", "newton-cg")


def debian(quick):
    """The Debian corpus as TF-IDF, or None (with the reason) where the file is absent."""
    if not CORPUS.exists():
        return None, f"{CORPUS} is absent (see ../shared/data/README.md to regenerate it)"
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer

    frame = pd.read_csv(CORPUS, sep="\t", header=None, names=["section", "package", "text"],
                        quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    counts = frame["section"].value_counts()
    frame = frame[frame["section"].isin(counts[counts >= 200].index)]
    if quick:
        frame = frame.sample(n=10_000, random_state=0)  # 6x fewer rows
    text = frame["package"].str.replace("-", " ") + " " + frame["text"]
    X = TfidfVectorizer(min_df=2, sublinear_tf=True).fit_transform(text)
    return (X.tocsr(), frame["section"].to_numpy()), None


def planted(X, n_classes, rng, scale):
    """Labels drawn from softmax(X W) with a sparse planted W."""
    W = sp.random(X.shape[1], n_classes, density=0.05, random_state=rng).toarray() * scale
    logits = np.asarray(X @ W)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((X.shape[0], 1))
    return (p.cumsum(axis=1) < u).sum(axis=1).clip(0, n_classes - 1)


def hashed(quick):
    rng = np.random.default_rng(0)
    n, d, per_row = (10_000 if quick else 100_000), 2**18, 50
    cols = (rng.zipf(1.3, size=n * per_row) - 1) % d
    rows = np.repeat(np.arange(n), per_row)
    X = sp.csr_matrix((np.ones(n * per_row), (rows, cols)), shape=(n, d))
    X.data = np.log1p(X.data)  # counts of repeated columns, damped
    return (X, planted(X, 20, rng, 8.0)), None


def onehot(quick):
    rng = np.random.default_rng(0)
    n, columns, levels = (50_000 if quick else 500_000), 20, 1_000
    codes = rng.integers(0, levels, size=(n, columns))
    cols = (codes + levels * np.arange(columns)).ravel()
    X = sp.csr_matrix((np.ones(n * columns), (np.repeat(np.arange(n), columns), cols)),
                      shape=(n, columns * levels))
    return (X, planted(X, 5, rng, 3.0)), None


PROBLEMS = {"debian": debian, "hashed": hashed, "onehot": onehot}


def objective(X, y, model, C=1.0):
    """``C sum_i CE_i + ||W||^2 / 2`` of a fitted model, in float64."""
    labels = np.searchsorted(model.classes_, y)
    with threadpool_limits(limits=1, user_api="blas"):
        logits = np.asarray(X @ model.coef_.T.astype(np.float64)) + model.intercept_
    if logits.shape[1] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    ce = logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]
    return float(C * ce.sum() + 0.5 * np.sum(model.coef_.astype(np.float64) ** 2))


def fit(model, X, y):
    """(seconds, objective, iterations, warned) of one fit, BLAS at one thread."""
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    seconds = time.perf_counter() - start
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return seconds, objective(X, y, model), int(np.max(model.n_iter_)), warned


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_memory_here(label, X, y):
    """Bytes the fit added to the process's peak resident memory (Linux: the peak is
    reset through /proc/self/clear_refs just before the fit, so it counts every
    allocation, C and Fortran ones included), or, elsewhere, the peak that tracemalloc
    saw (NumPy and Python allocations only)."""
    import gc

    model = DEFAULTS[label]()
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        before = _status_kib("VmRSS")
        resident = True
    except OSError:
        tracemalloc.start()
        resident = False
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    if resident:
        return (_status_kib("VmHWM") - before) * 1024
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def peak_memory(name, label, quick):
    """``peak_memory_here`` in a fresh process (which builds the problem again), so that
    no earlier fit's freed memory hides this one's."""
    import subprocess

    command = [sys.executable, "-P", __file__, "--peak-memory", name, label]
    result = subprocess.run(command + (["--quick"] if quick else []), capture_output=True,
                            text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


DEFAULTS = {
    "SoftmaxRegressor()": lambda: SoftmaxRegressor(),
    "LogisticRegression() (lbfgs)": lambda: LogisticRegression(),
    "LogisticRegression(solver='saga')": lambda: LogisticRegression(solver="saga"),
}


def ladder(name, X, y, budget, log, stop_value=None):
    """The fits of one solver's ladder: a list of (seconds, objective). ``stop_value``:
    stop once a fit's objective is at most this."""
    points, spent = [], 0.0
    if name == OURS:
        settings = [dict(tol=10.0**-e, max_iter=10_000) for e in range(2, 11)]
        make = lambda s: SoftmaxRegressor(**s)  # noqa: E731
    else:
        settings = [dict(max_iter=2**e, tol=0.0) for e in range(0, 20)]
        make = lambda s: LogisticRegression(solver=name, random_state=0, **s)  # noqa: E731
    last = 0.0
    for setting in settings:
        if spent + 2 * last > budget and points:
            log(f"    {name}: budget of {budget:.0f} s reached")
            break
        seconds, value, n_iter, _ = fit(make(setting), X, y)
        spent += seconds
        last = seconds
        points.append((seconds, value))
        if stop_value is not None and value <= stop_value:
            break
        if name != OURS and n_iter < setting["max_iter"]:
            break  # it stopped by itself: more iterations give the same fit
    return points, spent


def auto_choice(X, y):
    """The solver ``SoftmaxRegressor()`` runs on X (from its verbose header)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        SoftmaxRegressor(verbose=1, max_iter=1).fit(X, y)
    return repr(out.getvalue().splitlines()[0].split("; solver ")[1].split(", tol")[0])


def time_to(points, best, gap):
    """Fastest fit of a ladder within ``gap`` of ``best`` (relative), or None."""
    times = [s for s, v in points if (v - best) / abs(best) <= gap]
    return min(times) if times else None


def plot(name, shape, best, ladders, defaults, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-10
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for label, (points, _) in ladders.items():
        ours = label == OURS
        ax.loglog([p[0] for p in points], [max((p[1] - best) / best, floor) for p in points],
                  marker="o", markersize=3, label=label if ours else f"LogisticRegression {label}",
                  linewidth=2.2 if ours else 1.1, linestyle="-" if ours else "--")
    for label, (seconds, value, _, _) in defaults.items():
        ax.loglog([seconds], [max((value - best) / best, floor)], marker="*", markersize=11,
                  linestyle="none", label=f"default: {label}")
    for gap in GAPS:
        ax.axhline(gap, color="grey", linewidth=0.7, linestyle=":")
    n, d = shape
    ax.set_title(f"{name}: {n:,} x {d:,} sparse")
    ax.set_xlabel("fit time (s), BLAS at 1 thread")
    ax.set_ylabel(f"(F - F_best) / F_best  (shown from {floor:g})")
    ax.legend(fontsize=7)
    ax.grid(True, which="major", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def seconds_text(value, spent=None):
    if value is None:
        return f"> {spent:.1f}" if spent is not None else "-"
    return f"{value:.2f}"


def run(names, quick, out, log=print):
    """The tables (markdown) of every problem, and the targets table."""
    sections, targets, skipped = [], [], []
    for name in names:
        data, reason = PROBLEMS[name](quick)
        if data is None:
            skipped.append(f"{name}: skipped, {reason}")
            log(skipped[-1])
            continue
        X, y = data
        n_classes = len(np.unique(y))
        log(f"{name}: {X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} non-zeros, {n_classes} classes")
        defaults = {}
        for label, make in DEFAULTS.items():
            defaults[label] = fit(make(), X, y)
            log(f"  default {label}: {defaults[label][0]:.2f} s")
        memory = {label: peak_memory(name, label, quick)
                  for label in ("SoftmaxRegressor()", "LogisticRegression() (lbfgs)")}
        log("  peak memory: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in memory.items()))
        ladders = {}
        ladders[OURS] = ladder(OURS, X, y, BUDGET[quick], log)
        best = min([v for _, v in ladders[OURS][0]] + [d[1] for d in defaults.values()])
        for solver in SKLEARN_SOLVERS:
            ladders[solver] = ladder(solver, X, y, BUDGET[quick], log,
                                     stop_value=best * (1 + 0.5 * GAPS[-1]))
            log(f"  {solver}: {len(ladders[solver][0])} fits, {ladders[solver][1]:.1f} s")
        best = min([best] + [v for points, _ in ladders.values() for _, v in points])
        plot(name, X.shape, best, ladders, defaults, out / f"sparse_{name}.png")

        rows = []
        ours_default = defaults["SoftmaxRegressor()"][0]
        for label, (seconds, value, n_iter, warned) in defaults.items():
            rows.append([label, f"{seconds:.2f}", f"{seconds / ours_default:.2f}x",
                         f"{n_iter}{' (warned)' if warned else ''}", f"{value:.10g}",
                         f"{(value - best) / best:.1e}",
                         f"{memory[label] / 2**20:.0f}" if label in memory else "-"])
        text = (f"### {name}: {X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} non-zeros, "
                f"{n_classes} classes\n\nF_best = {best:.10g}\n\nDefault fits:\n\n"
                + markdown_table(["method", "seconds", "/ SoftmaxRegressor()", "iterations",
                                  "objective", "gap to F_best", "peak MiB added by the fit"], rows))
        rows = []
        reach = {}
        for label, (points, spent) in ladders.items():
            reach[label] = [time_to(points, best, gap) for gap in GAPS]
            rows.append([label if label == OURS else f"LogisticRegression(solver={label!r})",
                         len(points), f"{spent:.1f}",
                         *[seconds_text(t, spent) for t in reach[label]]])
        text += ("\n\nTime to a gap (seconds; the fastest fit of each ladder that reached it; "
                 "\"> s\": not within the budget it spent):\n\n"
                 + markdown_table(["solver", "fits", "seconds spent",
                                   *[f"to {g:g}" for g in GAPS]], rows))
        sections.append(text)

        rows = []
        for solver in ("lbfgs", "newton-cg", "sag"):
            for tol in (1e-4, 1e-6):
                seconds, value, n_iter, warned = fit(SoftmaxRegressor(solver=solver, tol=tol), X, y)
                rows.append([solver, f"{tol:g}", f"{seconds:.2f}",
                             f"{n_iter}{' (warned)' if warned else ''}",
                             f"{(value - best) / best:.1e}"])
            log(f"  our {solver}: {rows[-2][2]} s, {rows[-1][2]} s")
        sections[-1] = (
            text + "\n\nOur solvers, each at two tol (what solver=\"auto\" chooses between; "
            f"it ran {auto_choice(X, y)} here):\n\n"
            + markdown_table(["solver", "tol", "seconds", "iterations", "gap to F_best"], rows)
            + f"\n\n![gap against time, {name}](sparse_{name}.png)\n")

        lr = defaults["LogisticRegression() (lbfgs)"]
        ours = defaults["SoftmaxRegressor()"]
        speed = lr[0] / ours[0]
        no_worse = ours[1] <= lr[1] * (1 + 1e-9)
        targets.append([name, "default fit vs LogisticRegression(): >= 10x, objective no worse",
                        f"{speed:.2f}x, objective {'no worse' if no_worse else 'worse'}",
                        "met" if speed >= 10 and no_worse else "not met"])
        for i, gap in enumerate(GAPS):
            fastest, which, spent = None, None, 0.0
            for solver in SKLEARN_SOLVERS:
                t = reach[solver][i]
                if t is not None and (fastest is None or t < fastest):
                    fastest, which = t, solver
                spent = max(spent, ladders[solver][1])
            mine = reach[OURS][i]
            if mine is None:
                cell, verdict = "ours did not reach it", "not met"
            elif fastest is None:
                cell = f">= {spent / mine:.2f}x (no scikit-learn solver reached it)"
                verdict = "met" if spent / mine >= 3 else "at least " + f"{spent / mine:.2f}x"
            else:
                cell = f"{fastest / mine:.2f}x (fastest: {which}, {fastest:.2f} s; ours {mine:.2f} s)"
                verdict = "met" if fastest / mine >= 3 else "not met"
            targets.append([name, f"time to a {gap:g} gap vs the fastest scikit-learn solver: >= 3x",
                            cell, verdict])
        ratio = memory["SoftmaxRegressor()"] / memory["LogisticRegression() (lbfgs)"]
        targets.append([name, "peak memory below LogisticRegression()'s",
                        f"{ratio:.2f} of it", "met" if ratio < 1 else "not met"])
    text = ("## Sparse problems (BLAS at one thread)\n\n### Targets (issue 10)\n\n"
            + markdown_table(["problem", "target", "measured", "verdict"], targets)
            + "\n\n" + "\n\n".join(sections))
    if skipped:
        text += "\n" + "\n".join(skipped) + "\n"
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peak-memory", nargs=2, metavar=("PROBLEM", "METHOD"),
                        help="print the peak memory of one default fit (used by the run)")
    args = parser.parse_args(argv)
    if args.peak_memory:
        name, label = args.peak_memory
        X, y = PROBLEMS[name](args.quick)[0]
        print(peak_memory_here(label, X, y))
        return 0
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    text = run(args.problems.split(","), args.quick, out, log)
    (out / "sparse.md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
