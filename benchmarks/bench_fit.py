"""(b) Fits: time against suboptimality, SoftmaxRegressor against scikit-learn's solvers.

Every method is measured in the same run on the same data:

- softmaxreg: ``SoftmaxRegressor(n_jobs=2)`` (``solver="auto"``), with each solver
  (``"lbfgs"``, ``"newton-cg"``), and ``SoftmaxRegressor(n_jobs=1)``;
- "plain L-BFGS": softmaxreg's L-BFGS without its change of variables (the solver of
  the foundation issue, ``plain_lbfgs.py``);
- ``LogisticRegression`` with each multinomial solver (lbfgs, newton-cg,
  newton-cholesky, saga), BLAS limited to 1 thread, and lbfgs once more with BLAS at
  its default thread count (``LogisticRegression()`` as a user gets it);
- scikit-learn-intelex's ``LogisticRegression`` when it is installed.

For each, a path: fits from scratch with ``max_iter`` = 1, 2, 3, 4, 6, 9, ... (``tol=1e-12``
so that ``max_iter`` is what stops them), each timed, until the solver converges, stops
improving, or the next fit would go over the time budget. The objective of every fit,

    F(W, b) = C sum_i CE(softmax(x_i W^T + b), y_i) + ||W||^2 / 2,

is computed here, in float64 with a stable log-sum-exp, from ``coef_`` and
``intercept_``. F_best is the least F any fit reached; a fit's suboptimality is the
relative gap (F - F_best) / |F_best|. The time to reach a gap is that of the first fit
of the path within it, timed again: the median of several runs, the first run of the
path being after a warm-up. The default fit (each estimator's own ``tol`` and
``max_iter``) is timed the same way.

Run alone: ``python -P benchmarks/bench_fit.py [--quick] [--problems P1,digits]``.
"""

import argparse
import gc
import importlib.util
import math
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_lbfgs import PlainLbfgs  # noqa: E402
from problems import PROBLEMS, make_problem  # noqa: E402
from timing import markdown_table, ratio  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402

C = 1.0
GAPS = (1e-4, 1e-6, 1e-8)
OURS = "softmaxreg, 2 threads"
PLAIN = "plain L-BFGS, 2 threads"
# newton-cholesky forms the ((d + 1) k)^2 Hessian: with more parameters than this
# it needs gigabytes and minutes per iteration.
NEWTON_CHOLESKY_MAX_PARAMS = 2000
# Gaps are plotted down to this; F_best itself has gap 0.
PLOT_FLOOR = 1e-13
# The tol values of a path by tol.
PATH_TOLS = tuple(10.0**-e for e in range(1, 13))


@dataclass(frozen=True)
class Budget:
    """Time limits of one mode, in seconds."""

    run: float  # no path fit predicted to take longer is started
    path: float  # a method's path fits add up to at most about this
    default: float  # default fits predicted to take longer are skipped
    retime: float  # extra runs to time a reported fit stop after this
    repeats: int  # runs of a reported fit, at most
    max_iter: int  # the longest path fit
    growth: float  # max_iter grows by this factor along a path
    settle: float  # pause between methods, for idle threads of the last one to sleep

    def path_max_iters(self):
        """1, 2, 3, 4, 6, 9, ... (each about ``growth`` times the last) up to ``max_iter``."""
        values = [1]
        while values[-1] < self.max_iter:
            values.append(min(max(values[-1] + 1, round(values[-1] * self.growth)), self.max_iter))
        return values


BUDGETS = {
    False: Budget(run=10.0, path=25.0, default=20.0, retime=4.0, repeats=5,
                  max_iter=1000, growth=1.5, settle=0.2),
    True: Budget(run=0.5, path=1.0, default=3.0, retime=0.2, repeats=3,
                 max_iter=256, growth=2.0, settle=0.02),
}


@dataclass(frozen=True)
class Method:
    """One estimator and how it is run: ``make(max_iter, tol)``, ``make_default()``."""

    name: str
    make: object
    make_default: object
    blas: str  # "1", or "default": left as the library has it
    skip: str = ""  # why it is not run on this problem, if it is not
    # The targets compare these default fits: never skipped (lbfgs's default
    # max_iter=100 bounds them anyway).
    always_default: bool = False
    # "max_iter": path fits with max_iter = 1, 2, 3, ... and tol=1e-12. "tol": with the
    # default max_iter and tol = 1e-1, 1e-2, ...: for solver="auto", whose fallback to
    # newton-cg a binding max_iter would trigger at every point of a max_iter path.
    path_by: str = "max_iter"

    def blas_context(self):
        return threadpool_limits(limits=1, user_api="blas") if self.blas == "1" else nullcontext()

    def path_values(self, budget):
        return budget.path_max_iters() if self.path_by == "max_iter" else list(PATH_TOLS)

    def make_path(self, value):
        """The estimator of the path point ``value`` (a max_iter or a tol)."""
        if self.path_by == "max_iter":
            return self.make(value, 1e-12)
        return self.make(self.make_default().max_iter, value)


@dataclass
class Result:
    """What was measured of one method on one problem."""

    method: Method
    path: list = field(default_factory=list)  # (max_iter or tol, seconds, F, n_iter)
    stop: str = ""  # why the path stopped: "converged", "stalled", "budget" or "max_iter"
    default: tuple = None  # (seconds, F, n_iter, whether it warned of non-convergence)
    default_note: str = ""
    error: str = ""
    # gap -> (seconds, how): "reached" in that time; "budget": not within the path, whose
    # longest fit took that long; "never": the path converged or stalled short of it.
    reach: dict = field(default_factory=dict)


def methods(problem):
    """The methods measured on ``problem`` (a ``problems.Problem``)."""
    found = [
        Method(OURS, lambda m, tol: SoftmaxRegressor(C=C, max_iter=m, tol=tol, n_jobs=2),
               lambda: SoftmaxRegressor(C=C, n_jobs=2), "default", always_default=True,
               path_by="tol"),
        *[Method(f"softmaxreg {solver}, 2 threads",
                 lambda m, tol, s=solver: SoftmaxRegressor(
                     C=C, max_iter=m, tol=tol, n_jobs=2, solver=s),
                 lambda s=solver: SoftmaxRegressor(C=C, n_jobs=2, solver=s), "default",
                 always_default=True)
          for solver in ("lbfgs", "newton-cg")],
        Method(PLAIN, lambda m, tol: PlainLbfgs(C=C, max_iter=m, tol=tol, n_jobs=2),
               lambda: PlainLbfgs(C=C, n_jobs=2), "default"),
        Method("softmaxreg, 1 thread",
               lambda m, tol: SoftmaxRegressor(C=C, max_iter=m, tol=tol, n_jobs=1),
               lambda: SoftmaxRegressor(C=C, n_jobs=1), "default", path_by="tol"),
    ]
    n_params = (problem.n_features + 1) * problem.n_classes
    for solver in ("lbfgs", "newton-cg", "newton-cholesky", "saga"):
        skip = ""
        if solver == "newton-cholesky" and n_params > NEWTON_CHOLESKY_MAX_PARAMS:
            skip = (f"skipped: its Hessian has {n_params:,}^2 entries "
                    f"({n_params**2 * 8 / 2**30:.1f} GiB)")
        extra = {"random_state": 0} if solver == "saga" else {}
        found.append(Method(
            f"LR {solver}",
            lambda m, tol, s=solver, e=extra: LogisticRegression(
                C=C, solver=s, max_iter=m, tol=tol, **e),
            lambda s=solver, e=extra: LogisticRegression(C=C, solver=s, **e),
            "1", skip, always_default=solver == "lbfgs"))
    found.append(Method(
        "LR lbfgs, BLAS default",
        lambda m, tol: LogisticRegression(C=C, max_iter=m, tol=tol),
        lambda: LogisticRegression(C=C), "default", always_default=True))
    if importlib.util.find_spec("sklearnex") is not None:
        def intel(**params):
            from sklearnex.linear_model import LogisticRegression as IntelLogisticRegression

            return IntelLogisticRegression(C=C, **params)

        found.append(Method("sklearnex lbfgs", lambda m, tol: intel(max_iter=m, tol=tol),
                            lambda: intel(), "default"))
    return found


def objective(X64, y, coef, intercept):
    """F(W, b) in float64, with a stable log-sum-exp (BLAS at 1 thread: no idle spinners)."""
    coef = np.asarray(coef, dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        logits = X64 @ coef.T
    logits += np.asarray(intercept, dtype=np.float64)
    cross_entropy = logsumexp(logits, axis=1) - logits[np.arange(y.shape[0]), y]
    return float(C * math.fsum(cross_entropy) + 0.5 * math.fsum((coef * coef).ravel()))


def fit_once(method, estimator, X, y):
    """Fit ``estimator``; return (seconds, the fitted estimator). Warnings are recorded,
    not shown: ``estimator.convergence_warned_`` says whether a ConvergenceWarning came."""
    gc.collect()
    with method.blas_context(), warnings.catch_warnings(record=True) as caught:
        # ConvergenceWarning of the short path fits, LineSearchWarning of newton-cg ...
        warnings.simplefilter("always")
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
    estimator.convergence_warned_ = any(
        issubclass(w.category, ConvergenceWarning) for w in caught)
    return seconds, estimator


def n_iter_of(estimator):
    return int(np.max(estimator.n_iter_))


def retime(method, make, X, y, first_seconds, budget):
    """Median time of fits of ``make()``, the first one (already made) included."""
    samples = [first_seconds]
    extra = min(budget.repeats - 1, int(budget.retime / max(first_seconds, 1e-9)))
    for _ in range(extra):
        samples.append(fit_once(method, make(), X, y)[0])
    return statistics.median(samples)


def trace(method, X, X64, y, budget, log):
    """The path of one method: fits with growing ``max_iter``."""
    result = Result(method)
    if method.skip:
        return result
    try:
        values = method.path_values(budget)
        fit_once(method, method.make_path(values[0]), X, y)  # warm-up
        spent = 0.0
        for index, max_iter in enumerate(values):
            seconds, estimator = fit_once(method, method.make_path(max_iter), X, y)
            value = objective(X64, y, estimator.coef_, estimator.intercept_)
            n_iter = n_iter_of(estimator)
            result.path.append((max_iter, seconds, value, n_iter))
            spent += seconds
            if method.path_by == "max_iter" and n_iter < max_iter:
                result.stop = "converged"  # (or its line search gave up): no use going on
                break
            # (Along a tol path, two tols can stop at the same iterate: stalled only if
            # more iterations gained nothing.)
            if (len(result.path) > 1 and result.path[-2][2] - value <= 1e-13 * abs(value)
                    and (method.path_by == "max_iter" or n_iter > result.path[-2][3])):
                result.stop = "stalled"
                break
            if index + 1 == len(values):
                result.stop = "max_iter" if method.path_by == "max_iter" else "converged"
                break
            predicted = seconds * (values[index + 1] / max_iter if method.path_by == "max_iter"
                                   else 2)
            if predicted > budget.run or spent + predicted > budget.path:
                result.stop = "budget"
                break
    except Exception as error:  # one method failing must not lose the others' results
        result.error = f"{type(error).__name__}: {error}"
    seconds = sum(p[1] for p in result.path)
    why = result.stop or result.error or method.skip
    log(f"  fit {method.name}: {len(result.path)} path fits, {seconds:.2f} s, stopped: {why}")
    return result


def default_fit(result, X, X64, y, best, budget):
    """Time the method's fit with its own defaults, unless predicted to be too long.

    The prediction: the time of the path's first fit within 1e-8 of F_best (a default
    ``tol`` stops about there or sooner), or of its last fit when it converged or
    stalled; else the time per iteration of its last fit times the default max_iter.
    """
    if not result.path:
        return
    method = result.method
    default_max_iter = method.make_default().max_iter
    close = next((p for p in result.path if gap_of(p[2], best) <= 1e-8), None)
    max_iter, seconds = result.path[-1][:2]
    if close is not None:
        predicted = close[1]
    elif result.stop in ("converged", "stalled") or method.path_by == "tol":
        predicted = seconds
    else:
        predicted = seconds / max_iter * default_max_iter
    if predicted > budget.default and not method.always_default:
        result.default_note = f"skipped: about {predicted:.0f} s predicted"
        return
    try:
        seconds, estimator = fit_once(method, method.make_default(), X, y)
        value = objective(X64, y, estimator.coef_, estimator.intercept_)
        seconds = retime(method, method.make_default, X, y, seconds, budget)
        result.default = (seconds, value, n_iter_of(estimator), estimator.convergence_warned_)
    except Exception as error:
        result.error = f"{type(error).__name__}: {error}"


def time_to_gaps(result, X, y, best, budget):
    """Fill ``result.reach`` (see ``Result``); None for a method without a path."""
    for gap in GAPS:
        hit = next((p for p in result.path if gap_of(p[2], best) <= gap), None)
        if hit is not None:
            max_iter, seconds = hit[0], hit[1]
            seconds = retime(result.method, lambda m=max_iter: result.method.make_path(m),
                             X, y, seconds, budget)
            result.reach[gap] = (seconds, "reached")
        elif result.path:
            how = "never" if result.stop in ("converged", "stalled") else "budget"
            result.reach[gap] = (max(p[1] for p in result.path), how)
        else:
            result.reach[gap] = None


def run_problem(name, dtype, quick, log=print):
    """All methods on one problem and dtype; return (F_best, results)."""
    budget = BUDGETS[quick]
    problem = PROBLEMS[name]
    X, y = make_problem(name, dtype, quick)
    X64 = X if X.dtype == np.float64 else X.astype(np.float64)
    results = []
    for method in methods(problem):
        time.sleep(budget.settle)
        results.append(trace(method, X, X64, y, budget, log))
    best = min(p[2] for r in results for p in r.path)
    for result in results:
        time.sleep(budget.settle)
        default_fit(result, X, X64, y, best, budget)
    best = min([best] + [r.default[1] for r in results if r.default])
    for result in results:
        time.sleep(budget.settle)
        time_to_gaps(result, X, y, best, budget)
    return best, results


def gap_of(value, best):
    return (value - best) / abs(best)


def seconds_text(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def reach_text(reach):
    if reach is None:
        return "-"
    seconds, how = reach
    if how == "reached":
        return seconds_text(seconds)
    if how == "budget":
        return f"not in {seconds_text(seconds)}"
    return "never"


def reach_ratio(reach, ours_reach):
    """Their time over ours to a gap: exact, a lower bound (not within their path), or "-"."""
    if reach is None or ours_reach is None or ours_reach[1] != "reached":
        return "-"
    if reach[1] == "never":
        return "inf"
    return ratio(reach[0], ours_reach[0], lower_bound=reach[1] == "budget")


def table(name, dtype_name, shape, best, results):
    """The markdown section of one problem and dtype."""
    ours = next(r for r in results if r.method.name == OURS)
    header = ["method", "BLAS threads", "default fit", "n_iter", "default gap",
              "default / ours", *[f"time to gap {g:.0e}" for g in GAPS],
              *[f"{g:.0e}: / ours" for g in GAPS]]
    rows = []
    for r in results:
        if r.method.skip or r.error:
            rows.append([r.method.name, r.method.blas, r.method.skip or r.error,
                         *[""] * (len(header) - 3)])
            continue
        default_seconds = r.default[0] if r.default else None
        ours_default = ours.default[0] if ours.default else None
        rows.append([
            r.method.name, r.method.blas,
            seconds_text(default_seconds) if r.default else r.default_note,
            (str(r.default[2]) + (" (warned)" if r.default[3] else "")) if r.default else "",
            f"{gap_of(r.default[1], best):.1e}" if r.default else "",
            ratio(default_seconds, ours_default),
            *[reach_text(r.reach.get(g)) for g in GAPS],
            *[reach_ratio(r.reach.get(g), ours.reach.get(g)) for g in GAPS],
        ])
    n, d = shape
    return (f"### {name}, {dtype_name} ({n:,} x {d}, {PROBLEMS[name].n_classes} classes)\n\n"
            f"F_best = {best:.10g}\n\n" + markdown_table(header, rows) + "\n")


def plot(name, dtype_name, shape, best, results, path):
    """Suboptimality against time, log-log, one line per method; default fits as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for r in results:
        if not r.path:
            continue
        seconds = [p[1] for p in r.path]
        gaps = [max(gap_of(p[2], best), PLOT_FLOOR) for p in r.path]
        ours = r.method.name.startswith("softmaxreg")
        label = r.method.name + ("" if r.method.blas == "default" else ", BLAS 1")
        (line,) = ax.loglog(seconds, gaps, marker="o", markersize=3, label=label,
                            linewidth=2.2 if ours else 1.1, linestyle="-" if ours else "--")
        if r.default:
            ax.loglog([r.default[0]], [max(gap_of(r.default[1], best), PLOT_FLOOR)], marker="*",
                      markersize=11, color=line.get_color(), linestyle="none")
    for gap in GAPS:
        ax.axhline(gap, color="grey", linewidth=0.7, linestyle=":")
    n, d = shape
    ax.set_title(f"{name}, {dtype_name}: {n:,} x {d}, {PROBLEMS[name].n_classes} classes")
    ax.set_xlabel("fit time (s)")
    ax.set_ylabel(f"(F - F_best) / |F_best|  (shown from {PLOT_FLOOR:g})")
    ax.legend(fontsize=8, title="star: default fit", title_fontsize=8)
    ax.grid(True, which="major", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_numbers(results):
    """What the targets need of one problem: per method name, default and reach."""
    return {
        r.method.name: {
            "blas": r.method.blas,
            "default_seconds": r.default[0] if r.default else None,
            "default_F": r.default[1] if r.default else None,
            "default_n_iter": r.default[2] if r.default else None,
            "default_warned": r.default[3] if r.default else None,
            "reach": {g: r.reach.get(g) for g in GAPS},
            "path": r.path,
            "skip": r.method.skip or r.error or "",
        }
        for r in results
    }


def run(problems, quick, dtypes=(np.float64,), out=None, log=print):
    """Measure every problem and dtype; return ``(markdown, numbers)``.

    ``numbers[(problem, dtype_name)]`` = {"best": F_best, "methods": summary_numbers}.
    Plots go to ``out / f"subopt_{problem}_{dtype}.png"`` when ``out`` is given.
    """
    budget = BUDGETS[quick]
    sections, numbers = [], {}
    for name in problems:
        for dtype in dtypes:
            dtype_name = np.dtype(dtype).name
            log(f"fit {name} {dtype_name}")
            best, results = run_problem(name, dtype, quick, log)
            shape = PROBLEMS[name].shape(quick)
            sections.append(table(name, dtype_name, shape, best, results))
            numbers[(name, dtype_name)] = {"best": best, "methods": summary_numbers(results)}
            if out is not None:
                path = Path(out) / f"subopt_{name}_{dtype_name}.png"
                plot(name, dtype_name, shape, best, results, path)
    note = (
        "Method: softmaxreg's `n_jobs` is its OpenMP thread count (it keeps BLAS at 1 "
        "thread itself). `LR <solver>`: `LogisticRegression(solver=...)`, multinomial (the "
        "only multiclass loss of scikit-learn >= 1.8), with BLAS limited to 1 thread by "
        "threadpoolctl; `LR lbfgs, BLAS default` leaves BLAS at its default thread count. "
        f"C = {C:g} for all. 'default fit': the median time of fits with the estimator's own "
        "`tol` and `max_iter`, its gap, and its n_iter ('warned': it issued a "
        "ConvergenceWarning). 'gap': (F - F_best) / |F_best|, F computed in "
        "float64 from `coef_` and `intercept_`, F_best the least F of any fit of any method "
        "on this problem. `softmaxreg <solver>`: `SoftmaxRegressor(solver=...)`; "
        f"`{PLAIN}`: its L-BFGS without the change of variables (plain_lbfgs.py). "
        "'time to gap g': the time of the first fit of a path (`max_iter` = "
        f"{', '.join(map(str, budget.path_max_iters()[:6]))}, ... with `tol=1e-12`, each from "
        f"scratch; for `{OURS}` and `softmaxreg, 1 thread` (solver='auto'), `tol` = 1e-1, "
        "1e-2, ..., 1e-12 with the default `max_iter`, as a binding max_iter would make "
        "'auto' fall back to newton-cg at every point) whose gap is at most g, timed again: median of up to "
        f"{budget.repeats} runs (fewer for fits over {budget.retime / 2:g} s). A path stops "
        "when the solver converges (n_iter < max_iter) or stops improving, or when its next "
        f"fit would take over {budget.run:g} s or the path over {budget.path:g} s in all: "
        "'not in t': the path was cut short after fits of up to t without reaching the gap; "
        "'never': the solver converged or stalled short of it. '/ ours': that time over "
        f"`{OURS}`'s; '>=' for a lower bound, 'inf' for never. Default fits predicted to take "
        f"over {budget.default:g} s are skipped. Warnings are recorded, not shown."
    )
    text = "## (b) Fits: time to a given suboptimality\n\n" + "\n".join(sections)
    return text + "\n" + note + "\n", numbers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="problems shrunk 20x, small budgets")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated names")
    parser.add_argument("--dtypes", default="float64", help="comma-separated: float64,float32")
    args = parser.parse_args(argv)
    text, _ = run(args.problems.split(","), args.quick,
                  tuple(np.dtype(d).type for d in args.dtypes.split(",")))
    print(text)


if __name__ == "__main__":
    main()
