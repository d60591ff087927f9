"""(c) Regularization paths: 10 values of C fitted with and without warm starts.

For each problem and method, the path ``C = np.logspace(-4, 4, 10)`` is fitted twice:
cold (a new estimator for every C) and warm (one estimator with ``warm_start=True``,
its C changed between fits, as ``set_params(C=c).fit(X, y)``). Each path is timed as a
whole: the median of several runs after a warm-up. For every C the objective

    F(W, b) = C sum_i CE(softmax(x_i W^T + b), y_i) + ||W||^2 / 2

is computed in float64 from ``coef_`` and ``intercept_``; F_best(C) is the least any
fit reached at that C, and a fit's gap is (F - F_best(C)) / |F_best(C)|.

Run alone: ``python -P benchmarks/bench_path.py [--quick] [--problems digits-raw]``.
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, make_problem, objective  # noqa: E402
from timing import markdown_table, ratio  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402

CS = np.logspace(-4, 4, 10)
# The tolerances at which solver='auto' is also timed warm against cold (issue 8).
TOLS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
DEFAULT_PROBLEMS = ("digits-raw", "scaled", "digits")
METHODS = {  # name -> (make(C, warm_start), BLAS limited to 1 thread around the fits)
    "softmaxreg auto": (lambda C, warm: SoftmaxRegressor(C=C, warm_start=warm, n_jobs=2), False),
    "softmaxreg lbfgs": (
        lambda C, warm: SoftmaxRegressor(C=C, warm_start=warm, n_jobs=2, solver="lbfgs"), False),
    "softmaxreg newton-cg": (
        lambda C, warm: SoftmaxRegressor(C=C, warm_start=warm, n_jobs=2, solver="newton-cg"),
        False),
    "LR lbfgs": (lambda C, warm: LogisticRegression(C=C, warm_start=warm), True),
}


def fit_path(make, warm, X, y, blas_one):
    """Fit the path; return (seconds, fitted models' (coef_, intercept_), n_iter total,
    number of ConvergenceWarnings)."""
    models, n_iter, warned = [], 0, 0
    estimator = make(CS[0], warm)
    limit = threadpool_limits(limits=1, user_api="blas") if blas_one else None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for C in CS:
            if not warm:
                estimator = make(C, False)
            estimator.set_params(C=C).fit(X, y)
            models.append((estimator.coef_.copy(), estimator.intercept_.copy()))
            n_iter += int(np.max(estimator.n_iter_))
    seconds = time.perf_counter() - start
    if limit is not None:
        limit.restore_original_limits()
    warned = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return seconds, models, n_iter, warned


def run_problem(name, quick, repeats, log):
    X, y = make_problem(name, np.float64, quick)
    measured = {}
    for method, (make, blas_one) in METHODS.items():
        for warm in (False, True):
            fit_path(make, warm, X, y, blas_one)  # warm-up
            runs = [fit_path(make, warm, X, y, blas_one) for _ in range(repeats)]
            seconds = statistics.median(r[0] for r in runs)
            _, models, n_iter, warned = runs[0]
            values = [objective(X, y, coef, intercept, C) for (coef, intercept), C in zip(models, CS)]
            measured[(method, warm)] = dict(seconds=seconds, values=values, n_iter=n_iter,
                                            warned=warned)
            log(f"  path {name} {method} {'warm' if warm else 'cold'}: {seconds:.3f} s, "
                f"{n_iter} iterations, {warned} warnings")
    best = np.min([m["values"] for m in measured.values()], axis=0)
    for m in measured.values():
        m["max_gap"] = float(np.max((np.array(m["values"]) - best) / np.abs(best)))
    return measured


def run_tol_sweep(name, quick, repeats, log):
    """solver='auto' warm against cold at each of TOLS: ``{tol: {warm: measurement}}``."""
    X, y = make_problem(name, np.float64, quick)
    sweep = {}
    for tol in TOLS:
        def make(C, warm, tol=tol):
            return SoftmaxRegressor(C=C, warm_start=warm, n_jobs=2, tol=tol)

        sweep[tol] = {}
        for warm in (False, True):
            fit_path(make, warm, X, y, False)  # warm-up
            runs = [fit_path(make, warm, X, y, False) for _ in range(repeats)]
            _, models, n_iter, warned = runs[0]
            values = [objective(X, y, coef, intercept, C) for (coef, intercept), C in zip(models, CS)]
            sweep[tol][warm] = dict(seconds=statistics.median(r[0] for r in runs), values=values,
                                    n_iter=n_iter, warned=warned)
        cold, warm = sweep[tol][False], sweep[tol][True]
        log(f"  path {name} auto tol={tol:g}: cold {cold['seconds']:.3f} s, warm "
            f"{warm['seconds']:.3f} s")
    return sweep


def worse_by(warm, cold):
    """The largest relative amount by which a warm fit's F exceeds the cold fit's, over C."""
    return float(np.max((np.array(warm["values"]) - cold["values"]) / np.abs(cold["values"])))


def sweep_table(name, quick, sweep):
    rows = []
    for tol, fits in sweep.items():
        cold, warm = fits[False], fits[True]
        rows.append([
            f"{tol:g}", f"{cold['seconds'] * 1e3:.0f} ms", f"{warm['seconds'] * 1e3:.0f} ms",
            ratio(warm["seconds"], cold["seconds"]), f"{cold['n_iter']} / {warm['n_iter']}",
            f"{worse_by(warm, cold):.1e}", f"{cold['warned']} / {warm['warned']}",
        ])
    header = ["tol", "cold path", "warm path", "warm / cold", "iterations cold / warm",
              "warm F above cold F, at most (relative)", "ConvergenceWarnings cold / warm"]
    return (f"#### solver='auto' along tol: {PROBLEMS[name].describe(quick)}\n\n"
            + markdown_table(header, rows) + "\n")


def table(name, quick, measured):
    rows = []
    for method in METHODS:
        cold, warm = measured[(method, False)], measured[(method, True)]
        difference = np.max(np.abs(np.subtract(warm["values"], cold["values"]))
                            / np.abs(cold["values"]))
        rows.append([
            method, f"{cold['seconds'] * 1e3:.0f} ms", f"{warm['seconds'] * 1e3:.0f} ms",
            ratio(warm["seconds"], cold["seconds"]), f"{cold['n_iter']} / {warm['n_iter']}",
            f"{cold['max_gap']:.1e} / {warm['max_gap']:.1e}", f"{difference:.1e}",
            f"{cold['warned']} / {warm['warned']}",
        ])
    header = ["method", "cold path", "warm path", "warm / cold", "iterations cold / warm",
              "largest gap cold / warm", "largest warm-cold difference of F",
              "ConvergenceWarnings cold / warm"]
    return (f"### {PROBLEMS[name].describe(quick)}\n\n" + markdown_table(header, rows) + "\n")


def run(problems, quick, log=print):
    """Measure the paths; return ``(markdown, numbers)`` with
    ``numbers[problem][method][warm]`` the measurements."""
    repeats = 3 if not quick else 1
    sections, numbers = [], {}
    for name in problems:
        log(f"path {name}")
        measured = run_problem(name, quick, repeats, log)
        sweep = run_tol_sweep(name, quick, repeats, log)
        sections.append(table(name, quick, measured) + "\n" + sweep_table(name, quick, sweep))
        numbers[name] = {method: {warm: {k: v for k, v in measured[(method, warm)].items()}
                                  for warm in (False, True)} for method in METHODS}
        numbers[name]["auto along tol"] = sweep
    note = (
        f"C = {', '.join(f'{c:.3g}' for c in CS)}; every estimator with its default `tol` and "
        "`max_iter`; softmaxreg with `n_jobs=2`, LogisticRegression with BLAS at 1 thread. "
        f"Times: the whole path, median of {repeats} runs after a warm-up. 'largest gap': "
        "over the 10 values of C, (F - F_best(C)) / |F_best(C)|, F_best(C) the least F of "
        "any fit at that C. 'warm-cold difference': the largest relative difference between "
        "the warm and the cold fit's F at the same C. The tables along tol time "
        "solver='auto' (n_jobs=2) warm against cold at each tol; 'warm F above cold F': "
        "the largest (F_warm - F_cold) / |F_cold| over C (negative: warm always lower)."
    )
    text = "## (c) Regularization paths: warm against cold starts\n\n" + "\n".join(sections)
    return text + "\n" + note + "\n", numbers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed run per path")
    parser.add_argument("--problems", default=",".join(DEFAULT_PROBLEMS))
    args = parser.parse_args(argv)
    text, _ = run(args.problems.split(","), args.quick)
    print(text)


if __name__ == "__main__":
    main()
