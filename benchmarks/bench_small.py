"""(d) Small fits, grid searches and busy machines (issue 9).

Three scenarios, each timed side by side in one run (median after a warm-up):

1. **Small fits.** Digits, standardized and raw: ``SoftmaxRegressor()`` (default
   threads) against ``LogisticRegression()`` with BLAS at one thread, both at their
   defaults, and the time each takes to reach the other's objective gap. The
   solvers' iterates do not depend on ``max_iter`` (a larger ``max_iter`` continues
   the same sequence), so the time to a gap is that of the fit with the smallest
   ``max_iter`` whose gap is at most the target, found by bisection.
2. **Grid searches.** ``GridSearchCV`` over 20 values of C (``np.logspace(-4, 4,
   20)``) with 5 folds, on standardized digits and on a standardized 20,000 x 50
   problem with 5 classes, with ``GridSearchCV(n_jobs=1)`` (BLAS at one thread for
   LogisticRegression) and ``GridSearchCV(n_jobs=-1)`` (joblib's processes, which
   limit every library's threads to their share of the cores).
3. **A busy machine.** The default fit (``n_jobs=None``) against ``n_jobs=1`` on
   digits, P1 and P3, first on a quiet machine and then while as many processes as
   there are CPUs spin (each stops by itself after a bounded time); and ``n_jobs=2``
   (two threads forced) on digits, for the contrast. CPU seconds per fit say how
   much the threads burnt.

4. **Kernel threads.** The fused kernel on 1 and 2 threads by amount of work: where a
   second thread starts to pay.
5. **L-BFGS drivers.** scipy's L-BFGS-B and softmaxreg's own L-BFGS on the same
   objective: the time each spends per iteration outside the objective.

Run alone: ``python -P benchmarks/bench_small.py [--quick] [--only small|grid|busy|threads|drivers]``.
Writes ``results/small.md`` (``results/quick/`` with ``--quick``).
"""

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import busy_warning  # noqa: E402
from problems import make_problem, objective  # noqa: E402
from timing import markdown_table  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402
from softmaxreg._threads import available_cpus  # noqa: E402

GRID_CS = np.logspace(-4, 4, 20)
# LogisticRegression with a tolerance that brings its fits about as close to the optimum
# as SoftmaxRegressor's defaults: the comparison at equal accuracy.
TIGHT_LR = "LogisticRegression(tol=1e-8, max_iter=10000)"


def timed(fn, repeats, warmup=1):
    """(median, min, max) wall seconds and median CPU seconds of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), min(wall), max(wall), statistics.median(cpu)


def interleaved(fns, repeats, once=()):
    """``timed`` for several functions, run in turn (a, b, a, b, ...) after one warm-up
    each, so that a load that changes over the run affects all alike."""
    for fn in fns.values():
        fn()
    wall = {key: [] for key in fns}
    cpu = {key: [] for key in fns}
    for repeat in range(repeats):
        for key, fn in fns.items():
            if key in once and repeat > 0:
                continue
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    return {key: (statistics.median(wall[key]), min(wall[key]), max(wall[key]),
                  statistics.median(cpu[key])) for key in fns}


def quietly(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn()


def spread(t):
    return f"{t[0] * 1e3:.3g} ({t[1] * 1e3:.3g}-{t[2] * 1e3:.3g})"


# --------------------------------------------------------------------------- small fits


def _ours(**params):
    return SoftmaxRegressor(**params)


def _theirs(**params):
    return LogisticRegression(**params)


def _fit(make, X, y, blas_one, **params):
    def fn():
        model = make(**params)
        if blas_one:
            with threadpool_limits(limits=1, user_api="blas"):
                return quietly(lambda: model.fit(X, y))
        return quietly(lambda: model.fit(X, y))
    return fn


def _gap(X, y, model, best):
    return (objective(X, y, model.coef_, model.intercept_) - best) / abs(best)


def max_iter_to_gap(make, X, y, best, target, blas_one, upper, **params):
    """The smallest max_iter whose fit reaches ``target`` (relative gap), or None."""
    if _gap(X, y, _fit(make, X, y, blas_one, max_iter=upper, **params)(), best) > target:
        return None
    lo, hi = 0, upper  # gap(lo) > target >= gap(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _gap(X, y, _fit(make, X, y, blas_one, max_iter=mid, **params)(), best) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def run_small(quick, log):
    repeats = 3 if quick else 11
    rows, numbers = [], {}
    for name in ("digits", "digits-raw"):
        X, y = make_problem(name)
        best_model = quietly(lambda: SoftmaxRegressor(tol=1e-12, max_iter=10_000).fit(X, y))
        best = objective(X, y, best_model.coef_, best_model.intercept_)
        methods = {
            "SoftmaxRegressor()": (_ours, False),
            "LogisticRegression(), BLAS 1 thread": (_theirs, True),
        }
        result = {}
        for label, (make, blas_one) in methods.items():
            model = _fit(make, X, y, blas_one)()
            result[label] = {
                "time": timed(_fit(make, X, y, blas_one), repeats),
                "gap": max(_gap(X, y, model, best), 0.0),
                "n_iter": int(np.max(model.n_iter_)),
            }
        ours, theirs = (result[label] for label in methods)
        # Each model's time to the other's gap: within its default run where that gap is
        # larger than its own, else with a tol small enough not to stop it first.
        for me, other, (make, blas_one) in [(ours, theirs, methods["SoftmaxRegressor()"]),
                                            (theirs, ours, methods["LogisticRegression(), BLAS 1 thread"])]:
            target = max(other["gap"], 1e-15)
            params = {} if me["gap"] <= target else {"tol": 1e-12}
            upper = me["n_iter"] if me["gap"] <= target else 10_000
            m = max_iter_to_gap(make, X, y, best, target, blas_one, upper, **params)
            me["iters_to_other_gap"] = m
            me["time_to_other_gap"] = (
                timed(_fit(make, X, y, blas_one, max_iter=m, **params), repeats) if m else None)
        numbers[name] = result
        speed_default = theirs["time"][0] / ours["time"][0]
        speed_gap = theirs["time"][0] / ours["time_to_other_gap"][0]
        for label, r in result.items():
            to_gap = r["time_to_other_gap"]
            rows.append([
                name, label, spread(r["time"]), f"{r['time'][3] * 1e3:.3g}", r["n_iter"],
                f"{r['gap']:.1e}",
                f"{to_gap[0] * 1e3:.3g} ({r['iters_to_other_gap']} it.)" if to_gap else "not reached",
            ])
        numbers[name]["speedup_defaults"] = speed_default
        numbers[name]["speedup_at_their_gap"] = speed_gap
        log(f"small fits {name}: LR default / ours default {speed_default:.2f}x; "
            f"LR default / ours to LR's gap {speed_gap:.2f}x")
    text = "### Small fits: digits, defaults and time to the other's gap\n\n" + markdown_table(
        ["data", "model", "default fit, ms: median (min-max)", "CPU ms", "iterations",
         "objective gap", "time to the other's gap, ms"], rows)
    return text, numbers


# --------------------------------------------------------------------------- grid search


def grid_data(name, quick):
    if name == "digits":
        return make_problem("digits")
    n = 2_000 if quick else 20_000
    X, y = make_classification(n_samples=n, n_features=50, n_informative=25, n_classes=5,
                               n_clusters_per_class=1, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return np.ascontiguousarray(X), y


def grid_gaps(X, y):
    """For every (C, fold) of the grid: the objective gaps of SoftmaxRegressor() and of
    LogisticRegression() (BLAS at one thread) on the fold's training rows, against a
    SoftmaxRegressor fitted with tol=1e-10. Returns {name: (median, max)}."""
    from sklearn.model_selection import StratifiedKFold  # GridSearchCV's cv=5

    gaps = {"SoftmaxRegressor": [], "LogisticRegression": [], TIGHT_LR: []}
    with threadpool_limits(limits=1, user_api="blas"):
        for train, _ in StratifiedKFold(5).split(X, y):
            Xt, yt = X[train], y[train]
            for C in GRID_CS:
                best = quietly(lambda: SoftmaxRegressor(C=C, tol=1e-10, max_iter=100_000).fit(Xt, yt))
                F = objective(Xt, yt, best.coef_, best.intercept_, C)
                for name, make in (
                    ("SoftmaxRegressor", SoftmaxRegressor),
                    ("LogisticRegression", LogisticRegression),
                    (TIGHT_LR, lambda C: LogisticRegression(C=C, tol=1e-8, max_iter=10_000)),
                ):
                    model = quietly(lambda: make(C=C).fit(Xt, yt))
                    value = objective(Xt, yt, model.coef_, model.intercept_, C)
                    gaps[name].append(max(value - F, 0.0) / F)
    return {name: (float(np.median(v)), float(np.max(v))) for name, v in gaps.items()}


def run_grid(quick, log):
    repeats = 1 if quick else 3
    rows, numbers = [], {}
    for name in ("digits", "20,000 x 50"):
        X, y = grid_data(name, quick)
        gaps = grid_gaps(X, y)
        for grid_jobs in (1, -1):
            times = {}
            for label, estimator, blas_one in [
                ("SoftmaxRegressor", SoftmaxRegressor(), False),
                ("LogisticRegression", LogisticRegression(), grid_jobs == 1),
                (TIGHT_LR, LogisticRegression(tol=1e-8, max_iter=10_000), grid_jobs == 1),
            ]:
                search = GridSearchCV(estimator, {"C": GRID_CS}, cv=5, n_jobs=grid_jobs)
                warned = []

                def fn(search=search, blas_one=blas_one, warned=warned):
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", ConvergenceWarning)
                        if blas_one:
                            with threadpool_limits(limits=1, user_api="blas"):
                                search.fit(X, y)
                        else:
                            search.fit(X, y)
                    warned.append(sum(issubclass(w.category, ConvergenceWarning) for w in caught))

                t = timed(fn, repeats)
                warned = warned[0]
                times[label] = t
                rows.append([
                    name, grid_jobs, label, f"{t[0]:.3g} ({t[1]:.3g}-{t[2]:.3g})",
                    f"{search.best_params_['C']:.3g}", f"{search.best_score_:.4f}",
                    warned if grid_jobs == 1 else "-",
                    "{:.1e} / {:.1e}".format(*gaps[label]),
                ])
            speedup = times["LogisticRegression"][0] / times["SoftmaxRegressor"][0]
            numbers[(name, grid_jobs)] = speedup
            numbers[(name, grid_jobs, "tight")] = times[TIGHT_LR][0] / times["SoftmaxRegressor"][0]
            if grid_jobs != 1:  # joblib's worker processes would linger into what follows
                from joblib.externals.loky import get_reusable_executor
                get_reusable_executor().shutdown(wait=True)
            log(f"grid {name}, GridSearchCV(n_jobs={grid_jobs}): {speedup:.2f}x; against "
                f"{TIGHT_LR}: {numbers[(name, grid_jobs, 'tight')]:.2f}x")
    text = ("### GridSearchCV: 20 values of C x 5 folds\n\n" + markdown_table(
        ["data", "GridSearchCV n_jobs", "estimator", "seconds: median (min-max)", "best C",
         "best score", "fits that warned", "objective gap: median / max"], rows)
        + "\n\nLogisticRegression's ConvergenceWarnings (counted in the n_jobs=1 run) mark fits "
          "that stopped at max_iter=100 short of its own tol. Objective gap: (F - F*) / F* "
          "of each of the 100 (C, fold) fits on its training rows, F* from a fit with "
          "tol=1e-10: LogisticRegression's absolute stopping test ends far from the "
          "optimum at large C, where F is small.")
    return text, numbers


# --------------------------------------------------------------------------- busy machine

_HOG = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def start_hogs(seconds):
    """One process per CPU, each spinning for at most ``seconds``."""
    return [subprocess.Popen([sys.executable, "-c", _HOG.format(seconds=seconds)])
            for _ in range(available_cpus())]


def stop_hogs(hogs):
    for hog in hogs:
        hog.kill()
    for hog in hogs:
        hog.wait()


def run_busy(quick, log):
    problems = ("digits",) if quick else ("digits", "P1", "P3")
    repeats = 3 if quick else 5
    rows, numbers = [], {}
    for name in problems:
        X, y = make_problem(name, quick=quick)
        fits = {n_jobs: (lambda n_jobs=n_jobs: quietly(
            lambda: SoftmaxRegressor(n_jobs=n_jobs).fit(X, y))) for n_jobs in (None, 1, 2)}
        for machine in ("quiet", "busy"):
            hogs = start_hogs(600) if machine == "busy" else []
            try:
                time.sleep(0.5 if hogs else 0.0)  # let the load register
                jobs = (None, 1, 2) if name == "digits" else (None, 1)
                results = interleaved({n_jobs: fits[n_jobs] for n_jobs in jobs}, repeats,
                                      # n_jobs=2 under load takes 10-50x as long: once.
                                      once={2} if machine == "busy" else set())
            finally:
                stop_hogs(hogs)
            ratio = results[None][0] / results[1][0]
            numbers[(name, machine)] = ratio
            for n_jobs, t in results.items():
                rows.append([name, machine, "None (default)" if n_jobs is None else n_jobs,
                             spread(t), f"{t[3] * 1e3:.3g}",
                             f"{t[0] / results[1][0]:.2f}x"])
            log(f"busy {name} {machine}: default / n_jobs=1 = {ratio:.2f}x")
    text = (f"### A busy machine: default threads against one ({available_cpus()} CPUs, "
            f"{available_cpus()} spinning processes when busy)\n\n" + markdown_table(
                ["data", "machine", "n_jobs", "fit ms: median (min-max)", "CPU ms",
                 "time / n_jobs=1"], rows))
    return text, numbers


# --------------------------------------------------------------------------- kernel threads


def run_kernel_threads(quick, log):
    """The fused loss+gradient kernel on 1 and 2 threads, by work (rows x features x
    classes): where a second thread starts to pay (``_threads.MIN_WORK_PER_THREAD``)."""
    from softmaxreg._dispatch import linear_kernels
    from softmaxreg._threads import MIN_WORK_PER_THREAD

    rows = []
    shapes = [(100, 10, 3), (300, 20, 3), (600, 20, 3), (1000, 20, 5), (1797, 64, 10),
              (5000, 50, 3), (20000, 50, 10)]
    for n, d, k in shapes:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, d))
        labels = rng.integers(0, k, n).astype(np.intp)
        coef = 0.1 * rng.standard_normal((d, k))
        b, gc, gb, sw = np.zeros(k), np.empty((d, k)), np.empty(k), np.empty(0)
        kernels = linear_kernels(k)
        times = {}
        for threads in (1, 2):
            times[threads] = timed(lambda: kernels.linear_loss_gradient(
                X, labels, sw, coef, b, gc, gb, threads), 51 if quick else 201, warmup=20)[0]
        work = n * (d + 1) * k
        rows.append([f"{n} x {d}, {k} classes", f"{work:,}", f"{times[1] * 1e6:.1f}",
                     f"{times[2] * 1e6:.1f}", f"{times[1] / times[2]:.2f}x",
                     2 if work >= MIN_WORK_PER_THREAD else 1])
    log("kernel threads measured")
    return (f"### Kernel threads: loss+gradient on 1 and 2 threads (MIN_WORK_PER_THREAD = "
            f"{MIN_WORK_PER_THREAD:,})\n\n" + markdown_table(
                ["data", "work (n (d+1) k)", "1 thread, us", "2 threads, us", "1 / 2",
                 "threads chosen"], rows))


# --------------------------------------------------------------------------- L-BFGS drivers


def run_drivers(quick, log):
    """scipy's L-BFGS-B against softmaxreg's own L-BFGS (``_lbfgs.minimize_lbfgs``) on the
    same objective (digits, standardized coordinates, 2 threads): 60 iterations each,
    the time per iteration spent outside the objective (the driver's own cost)."""
    from scipy.optimize import minimize

    from softmaxreg._lbfgs import minimize_lbfgs
    from softmaxreg._objective import LinearSoftmaxObjective
    from softmaxreg._preconditioning import StandardizedObjective
    from softmaxreg._threads import limited_blas

    X, y = make_problem("digits")
    objective = StandardizedObjective(LinearSoftmaxObjective(
        X, y.astype(np.intp), 10, np.empty(0), C=1.0, fit_intercept=True, n_threads=2), 2)
    spent = {}

    def counted(w):
        t0 = time.perf_counter()
        result = objective.loss_gradient(w)
        spent["objective"] += time.perf_counter() - t0
        spent["calls"] += 1
        return result

    class Counted:
        value_resolution = objective.value_resolution
        optimality = staticmethod(objective.optimality)
        loss_gradient = staticmethod(counted)

    w0 = np.zeros(objective.n_params)
    drivers = {
        "scipy L-BFGS-B": lambda: minimize(
            counted, w0, method="L-BFGS-B", jac=True,
            options={"maxiter": 60, "maxls": 50, "gtol": 0.0, "ftol": 0.0}).nit,
        "softmaxreg _lbfgs": lambda: minimize_lbfgs(Counted, w0, tol=0.0, max_iter=60)[3],
    }
    rows = []
    with limited_blas():
        for name, run in drivers.items():
            results = []
            for _ in range(3 if quick else 11):
                spent.update(objective=0.0, calls=0)
                t0 = time.perf_counter()
                n_iter = run()
                total = time.perf_counter() - t0
                results.append((total, spent["objective"], spent["calls"], n_iter))
            total, inside, calls, n_iter = sorted(results)[len(results) // 2]
            rows.append([name, n_iter, calls, f"{total * 1e3:.2f}", f"{inside * 1e3:.2f}",
                         f"{(total - inside) / n_iter * 1e6:.0f}"])
    log("L-BFGS drivers measured")
    return ("### L-BFGS drivers: 60 iterations on digits (standardized coordinates, 2 "
            "threads)\n\n" + markdown_table(
                ["driver", "iterations", "evaluations", "total ms", "in the objective, ms",
                 "driver's own us per iteration"], rows))


# --------------------------------------------------------------------------- targets


def targets(small, grid, busy):
    rows = []

    def at_least(target, value, threshold):
        rows.append([target, f"{value:.3g}x", "met" if value >= threshold else "NOT met"])

    for name, numbers in (small or {}).items():
        at_least(f"{name}: LogisticRegression() default time / SoftmaxRegressor's time to "
                 "LR's gap >= 3x", numbers["speedup_at_their_gap"], 3.0)
        ours = numbers["SoftmaxRegressor()"]
        theirs = numbers["LogisticRegression(), BLAS 1 thread"]
        rows.append([f"{name}: both at defaults (gaps {ours['gap']:.1e} ours, "
                     f"{theirs['gap']:.1e} LR)", f"{numbers['speedup_defaults']:.3g}x",
                     "met" if numbers["speedup_defaults"] >= 3 and ours["gap"] <= theirs["gap"]
                     else "NOT met"])
    for key, value in (grid or {}).items():
        name, jobs = key[:2]
        against = TIGHT_LR if len(key) == 3 else "LogisticRegression()"
        at_least(f"GridSearchCV(n_jobs={jobs}) on {name}: >= 3x faster than over {against}",
                 value, 3.0)
    for (name, machine), value in (busy or {}).items():
        rows.append([f"{name}, {machine} machine: default time / n_jobs=1 time <= 1.2",
                     f"{value:.2f}", "met" if value <= 1.2 else "NOT met"])
    return "### Targets (issue 9)\n\n" + markdown_table(["target", "measured", "verdict"], rows)


def run(quick, only=None, log=print):
    parts, small, grid, busy = [], None, None, None
    if only in (None, "small"):
        text, small = run_small(quick, log)
        parts.append(text)
    if only in (None, "grid"):
        text, grid = run_grid(quick, log)
        parts.append(text)
    if only in (None, "busy"):
        text, busy = run_busy(quick, log)
        parts.append(text)
    if only in (None, "threads"):
        parts.append(run_kernel_threads(quick, log))
    if only in (None, "drivers"):
        parts.append(run_drivers(quick, log))
    return "\n\n".join([targets(small, grid, busy), *parts]) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["small", "grid", "busy", "threads", "drivers"])
    args = parser.parse_args(argv)
    warning = busy_warning()
    if warning:
        print(warning)
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    text = run(args.quick, args.only, log)
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    name = "small.md" if args.only is None else f"small-{args.only}.md"
    (out / name).write_text(text)
    print("\n" + text)
    print(f"written to {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
