"""(f) L1 and elastic-net penalties, and SoftmaxRegressorCV (issue 11).

Three parts, with BLAS at one thread and every fit on the machine's cores (2 here):

1. **Time to a gap against saga.** For each problem and ``l1_ratio`` in (1.0, 0.5), at
   C = 1: ``SoftmaxRegressor(l1_ratio=...)`` (OWL-QN) along a ladder of tol (1e-2 ...
   1e-10) and ``LogisticRegression(solver="saga", l1_ratio=...)`` along a ladder of
   max_iter (1, 2, 4, ... with tol=0), each ladder within ``BUDGET`` seconds; the
   objective ``C sum_i CE_i + (1 - r) ||W||^2 / 2 + r ||W||_1`` of every fit, and the
   time each needs to a relative gap of 1e-4 and 1e-6 to the least objective any fit
   reached. Problems: ``digits`` (raw pixels, 1797 x 64, 10 classes), ``debian`` (the
   text corpus of ``../shared/data/``, as in bench_sparse.py: 62,226 x 43,131, 43
   classes; skipped, with the reason, where the file is absent) and ``onehot``
   (500,000 x 20,000, 5 classes, as in bench_sparse.py).
2. **SoftmaxRegressorCV against LogisticRegressionCV**, with the same Cs, the same
   folds (StratifiedKFold(5), or 3 on the corpus) and ``scoring="neg_log_loss"``, both
   on every core (``n_jobs`` of the number of cores: LogisticRegressionCV runs folds in
   processes, ours in threads with the OpenMP threads split among them), each timed
   once after a warm-up fit of each on a small problem: time, chosen C, best mean
   score. Problems: ``digits`` (raw), ``scaled`` (20,000 x 50, 5 classes, features
   scaled by 1e-3 .. 1e3: benchmarks/problems.py) and ``debian``.
3. **The same model as saga** (``--verify``): on iris, digits (raw and standardized)
   and the corpus, for ``l1_ratio`` in (1.0, 0.5) and C in (0.01, 1, 100), our fit at
   tol=1e-10 against ``LogisticRegression(solver="saga", tol=1e-10, max_iter=...)``:
   the relative objective difference (negative: ours lower), the times and iterations,
   and whether the zero coefficients are the same (l1_ratio=0.5, where the optimum is
   unique). tests/test_l1.py checks the optimality conditions themselves. saga's max_iter is 1e5 as the issue asks on iris, 1e4 on digits and 100 on
   the corpus, where 1e5 epochs would take days (stated in the table); on the corpus
   only C in (0.01, 1), and our max_iter is 3,000 there, for the run's length.

Targets (issue 11): at least 10x faster than saga to a 1e-6 gap; at least 5x faster than
LogisticRegressionCV with the same chosen C.

Run: ``python -P benchmarks/bench_l1.py [--quick] [--verify]`` (``--quick``: 10x fewer
rows, smaller budgets). Writes ``results/l1.md`` (``results/quick/l1.md``).
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_sparse import debian, onehot  # noqa: E402
from problems import make_problem  # noqa: E402
from timing import markdown_table  # noqa: E402

from softmaxreg import SoftmaxRegressor, SoftmaxRegressorCV  # noqa: E402

GAPS = (1e-4, 1e-6)
RATIOS = (1.0, 0.5)
# Seconds of fits per ladder, at most (quick, full).
BUDGET = {True: 20.0, False: 150.0}
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def digits(quick):
    X, y = load_digits(return_X_y=True)
    return (np.ascontiguousarray(X, dtype=np.float64), y), None


def scaled(quick):
    return make_problem("scaled", quick=quick), None


def onehot_rows(quick):
    return onehot(quick)


GAP_PROBLEMS = {"digits": digits, "debian": debian, "onehot": onehot_rows}
CV_PROBLEMS = {"digits": digits, "scaled": scaled, "debian": debian}


def objective(X, y, model, C, l1_ratio):
    """``C sum_i CE_i + (1 - r) ||W||^2 / 2 + r ||W||_1`` of a fitted model, float64."""
    labels = np.searchsorted(model.classes_, y)
    coef = np.asarray(model.coef_, dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        logits = np.asarray(X @ coef.T) + model.intercept_
    if logits.shape[1] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    ce = logsumexp(logits, axis=1) - logits[np.arange(labels.shape[0]), labels]
    return float(C * ce.sum() + (1 - l1_ratio) / 2 * np.sum(coef**2)
                 + l1_ratio * np.abs(coef).sum())


def timed_fit(model, X, y):
    """(seconds, n_iter) of one fit, BLAS at one thread, convergence warnings silenced."""
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return time.perf_counter() - start, int(np.max(model.n_iter_))


def ladder(solver, X, y, C, l1_ratio, budget, log):
    """The fits of one ladder: a list of (seconds, objective)."""
    if solver == "ours":
        settings = [dict(tol=10.0**-e, max_iter=100_000) for e in range(2, 11)]
        make = lambda s: SoftmaxRegressor(C=C, l1_ratio=l1_ratio, **s)  # noqa: E731
    else:
        settings = [dict(max_iter=2**e, tol=0.0) for e in range(0, 20)]
        make = lambda s: LogisticRegression(  # noqa: E731
            C=C, l1_ratio=l1_ratio, solver="saga", random_state=0, **s)
    points, spent, last = [], 0.0, 0.0
    for setting in settings:
        if points and spent + 2 * last > budget:
            log(f"    {solver}: budget of {budget:.0f} s reached")
            break
        model = make(setting)
        seconds, n_iter = timed_fit(model, X, y)
        spent, last = spent + seconds, seconds
        points.append((seconds, objective(X, y, model, C, l1_ratio)))
        log(f"    {solver} {setting}: {seconds:.2f} s, objective {points[-1][1]:.10g}")
        if solver != "ours" and n_iter < setting["max_iter"]:
            break  # saga stopped by itself
    return points, spent


def time_to(points, best, gap):
    times = [s for s, v in points if (v - best) / abs(best) <= gap]
    return min(times) if times else None


def seconds_text(value, spent):
    return f"{value:.2f}" if value is not None else f"> {spent:.1f}"


def gap_part(quick, log):
    """Part 1: rows of the table, and the target verdicts."""
    rows, verdicts = [], []
    C = 1.0
    for name, loader in GAP_PROBLEMS.items():
        data, reason = loader(quick)
        if data is None:
            log(f"{name}: skipped: {reason}")
            rows.append([name, "-", "skipped: " + reason] + ["-"] * 6)
            continue
        X, y = data
        # A warm-up fit (imports, thread pools, first-touch of the data).
        timed_fit(SoftmaxRegressor(C=C, l1_ratio=1.0, max_iter=2), X, y)
        for l1_ratio in RATIOS:
            log(f"{name}, l1_ratio={l1_ratio}:")
            ours, ours_spent = ladder("ours", X, y, C, l1_ratio, BUDGET[quick], log)
            saga, saga_spent = ladder("saga", X, y, C, l1_ratio, BUDGET[quick], log)
            best = min(v for _, v in ours + saga)
            cells = [name, f"{l1_ratio:g}", f"{best:.10g}"]
            for gap in GAPS:
                t_ours, t_saga = time_to(ours, best, gap), time_to(saga, best, gap)
                if t_ours is None:
                    ratio = "-"
                elif t_saga is None:
                    ratio = f">= {saga_spent / t_ours:.3g}x"
                else:
                    ratio = f"{t_saga / t_ours:.3g}x"
                cells += [seconds_text(t_ours, ours_spent), seconds_text(t_saga, saga_spent),
                          ratio]
                if gap == 1e-6:
                    met = t_ours is not None and (t_saga is None and saga_spent >= 10 * t_ours
                                                  or t_saga is not None and t_saga >= 10 * t_ours)
                    verdicts.append((f"{name}, l1_ratio={l1_ratio:g}: time to a 1e-6 gap "
                                     "at least 10x faster than saga", ratio, met))
            rows.append(cells)
    header = ["problem", "l1_ratio", "least objective"]
    for gap in GAPS:
        header += [f"ours to {gap:g} (s)", f"saga to {gap:g} (s)", "ratio"]
    return markdown_table(header, rows), verdicts


def cv_part(quick, log):
    rows, verdicts = [], []
    for name, loader in CV_PROBLEMS.items():
        data, reason = loader(quick)
        if data is None:
            log(f"{name}: skipped: {reason}")
            rows.append([name, "skipped: " + reason] + ["-"] * 7)
            continue
        X, y = data
        corpus = sp.issparse(X)
        Cs = np.logspace(-2, 2, 5) if corpus else 10
        cv = StratifiedKFold(3 if corpus else 5)
        ours = SoftmaxRegressorCV(Cs=Cs, cv=cv)
        theirs = LogisticRegressionCV(Cs=Cs, cv=cv, scoring="neg_log_loss", l1_ratios=(0.0,),
                                      use_legacy_attributes=False, n_jobs=CORES)
        # Warm-up (imports, thread pools, joblib's workers) on a small problem.
        warm_X, warm_y = make_classification(n_samples=300, n_classes=3, n_informative=4,
                                             random_state=0)
        timed_fit(SoftmaxRegressorCV(Cs=3, cv=3), warm_X, warm_y)
        timed_fit(LogisticRegressionCV(Cs=3, cv=3, n_jobs=CORES, l1_ratios=(0.0,),
                                       use_legacy_attributes=False), warm_X, warm_y)
        log(f"{name}: SoftmaxRegressorCV ...")
        t_ours, _ = timed_fit(ours, X, y)
        log(f"    {t_ours:.2f} s, C_={ours.C_:.4g}")
        log(f"{name}: LogisticRegressionCV(n_jobs={CORES}) ...")
        t_theirs, _ = timed_fit(theirs, X, y)
        log(f"    {t_theirs:.2f} s, C_={theirs.C_:.4g}")
        same = bool(np.isclose(ours.C_, theirs.C_))
        ratio = t_theirs / t_ours
        rows.append([name, f"{X.shape[0]} x {X.shape[1]}", f"{len(ours.Cs_)} x {cv.n_splits}",
                     f"{t_ours:.2f}", f"{t_theirs:.2f}", f"{ratio:.3g}x",
                     f"{ours.C_:.4g} / {theirs.C_:.4g}",
                     f"{ours.scores_.mean(axis=0).max():.6g} / {theirs.scores_.mean(axis=0).max():.6g}",
                     "yes" if same else "no"])
        verdicts.append((f"{name}: SoftmaxRegressorCV at least 5x faster than "
                         "LogisticRegressionCV, with the same chosen C",
                         f"{ratio:.3g}x, C_ {'the same' if same else 'differs'}",
                         ratio >= 5 and same))
    header = ["problem", "shape", "Cs x folds", "ours (s)", "LogisticRegressionCV (s)", "ratio",
              "C_ (ours / theirs)", "best mean score (ours / theirs)", "same C_"]
    return markdown_table(header, rows), verdicts


def verify_part(quick, log):
    """Part 3: our fit at tol=1e-10 against saga's, per data set and setting."""
    from sklearn.datasets import load_digits as _digits

    X_digits, y_digits = _digits(return_X_y=True)
    data = {
        "iris": (load_iris(return_X_y=True), 100_000),
        "digits (raw)": ((X_digits, y_digits), 10_000),
        "digits (standardized)": ((StandardScaler().fit_transform(X_digits), y_digits), 10_000),
    }
    corpus, reason = debian(quick)
    if corpus is not None:
        data["debian"] = (corpus, 100)
    else:
        log(f"debian: skipped: {reason}")
    rows, largest = [], {}
    for name, ((X, y), saga_iter) in data.items():
        for l1_ratio in RATIOS:
            for C in (0.01, 1.0) if name == "debian" else (0.01, 1.0, 100.0):
                ours = SoftmaxRegressor(C=C, l1_ratio=l1_ratio, tol=1e-10,
                                        max_iter=3_000 if name == "debian" else 100_000)
                t_ours, it_ours = timed_fit(ours, X, y)
                saga = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10,
                                          max_iter=saga_iter, random_state=0)
                t_saga, it_saga = timed_fit(saga, X, y)
                f_ours, f_saga = (objective(X, y, m, C, l1_ratio) for m in (ours, saga))
                difference = (f_ours - f_saga) / abs(f_saga)
                largest[name] = max(largest.get(name, -np.inf), difference)
                zeros = "-"
                if l1_ratio < 1:
                    zeros = "same" if np.array_equal(ours.coef_ == 0, saga.coef_ == 0) else (
                        f"differ in {np.count_nonzero((ours.coef_ == 0) != (saga.coef_ == 0))}")
                rows.append([name, f"{l1_ratio:g}", f"{C:g}", f"{f_ours:.12g}", f"{f_saga:.12g}",
                             f"{difference:.2e}", f"{t_ours:.2f} ({it_ours})",
                             f"{t_saga:.2f} ({it_saga} of {saga_iter})", zeros])
                log("  " + " | ".join(rows[-1]))
    header = ["data", "l1_ratio", "C", "ours", "saga", "(ours - saga) / saga", "ours s (iter)",
              "saga s (epochs)", "zero coefficients"]
    summary = markdown_table(["data", "largest (ours - saga) / saga"],
                             [[k, f"{v:.2e}"] for k, v in largest.items()])
    return markdown_table(header, rows) + "\n\n" + summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--verify", action="store_true", help="also part 3 (long)")
    parser.add_argument("--parts", default="gap,cv", help="parts 1 and 2: gap,cv")
    args = parser.parse_args(argv)
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    log = lambda text: print(text, flush=True)  # noqa: E731
    sections, verdicts = [], []
    start = time.perf_counter()
    if "gap" in args.parts:
        table, found = gap_part(args.quick, log)
        sections += ["## Time to a gap: OWL-QN against saga (C=1)", table]
        verdicts += found
    if "cv" in args.parts:
        table, found = cv_part(args.quick, log)
        sections += ["## SoftmaxRegressorCV against LogisticRegressionCV", table]
        verdicts += found
    if args.verify:
        sections += ["## The same model as saga (tol=1e-10)", verify_part(args.quick, log)]
    targets = markdown_table(["target", "measured", "verdict"],
                             [[t, m, "met" if ok else "not met"] for t, m, ok in verdicts])
    text = "\n\n".join(["# L1, elastic net and SoftmaxRegressorCV (issue 11)",
                        f"{CORES} cores; {time.perf_counter() - start:.0f} s in all. "
                        f"Command: `python -P benchmarks/bench_l1.py{' --quick' if args.quick else ''}"
                        f"{' --verify' if args.verify else ''}`",
                        "## Targets", targets, *sections]) + "\n"
    (out / ("l1_verify.md" if args.verify and args.parts == "" else "l1.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
