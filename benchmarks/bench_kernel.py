"""(a) Kernel: one evaluation of the objective and its gradient at the same point.

For each problem, dtype and thread count, the median time of one loss+gradient of

- softmaxreg: ``LinearSoftmaxObjective.loss_gradient`` (the fused kernel plus the
  O(d k) packing and penalty around it, as during a fit), BLAS at 1 thread;
- scikit-learn: ``LinearModelLoss(HalfMultinomialLoss).loss_gradient``, the function
  ``LogisticRegression(solver="lbfgs")`` minimizes, with its OpenMP threads set to the
  thread count and BLAS at 1 thread or at the thread count, whichever is faster;
- read X: the faster of two ways to read X once with that many threads
  (``np.sum`` over blocks of rows in a thread pool, and the BLAS product ``X @ v``):
  a floor for anything that must look at every entry of X;
- PyTorch, when it is installed: ``cross_entropy`` forward and ``backward`` on tensors
  sharing X's memory, ``torch.set_num_threads`` set to the thread count.

Also the peak memory a P1 fit allocates beyond X (tracemalloc).

Run alone: ``python -P benchmarks/bench_kernel.py [--quick] [--problems P1,P3]``.
"""

import argparse
import importlib.util
import sys
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, make_problem  # noqa: E402
from timing import markdown_table, median_time, ms, ratio  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402
from softmaxreg._objective import LinearSoftmaxObjective  # noqa: E402
from softmaxreg._threads import limited_blas  # noqa: E402

THREADS = (1, 2)
DTYPES = (np.float64, np.float32)
C = 1.0
# Seconds to wait before timing another library: idle OpenBLAS and OpenMP threads spin
# for a while after their work and would share the cores with the next one.
SETTLE = {False: 0.5, True: 0.3}


def random_point(n_features, n_classes, seed=0):
    """Small random coefficients (k, d) and intercept (k,), float64: scale 0.01."""
    rng = np.random.default_rng(seed)
    coef = 0.01 * rng.standard_normal((n_classes, n_features))
    return coef, 0.01 * rng.standard_normal(n_classes)


def softmaxreg_call(X, labels, coef, intercept, n_threads):
    """``(fn, (loss, grad_coef, grad_intercept))`` for softmaxreg's objective.

    The objective is ``mean CE + ||W||^2 / (2 C n)``; the gradient is returned as
    arrays of the shapes of coef (k, d) and intercept (k,).
    """
    n_classes = coef.shape[0]
    objective = LinearSoftmaxObjective(
        X, labels, n_classes, np.empty(0, dtype=X.dtype), C=C, fit_intercept=True,
        n_threads=n_threads,
    )
    w = objective.pack(coef, intercept)

    def fn():
        with limited_blas():
            return objective.loss_gradient(w)

    loss, grad = fn()
    n_coef = coef.size
    return fn, (loss, grad[:n_coef].reshape(-1, n_classes).T, grad[n_coef:])


def sklearn_call(X, labels, coef, intercept, n_threads):
    """The same with scikit-learn's ``LinearModelLoss``; None where it cannot be imported.

    Private API, tested with scikit-learn 1.6 to 1.9. Its objective is
    ``mean(loss) + l2_reg_strength / 2 ||W||^2``: with ``l2_reg_strength = 1 / (C n)``
    it is softmaxreg's, value for value.
    """
    try:
        from sklearn._loss.loss import HalfMultinomialLoss
        from sklearn.linear_model._linear_loss import LinearModelLoss
    except ImportError:
        return None, None
    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=coef.shape[0]),
                           fit_intercept=True)
    # (k, d + 1), F-ordered, in X's dtype: as LogisticRegression passes it.
    coef_sk = np.asfortranarray(np.hstack([coef, intercept[:, None]]), dtype=X.dtype)
    y = labels.astype(X.dtype)
    l2 = 1.0 / (C * X.shape[0])

    def fn():
        return loss.loss_gradient(coef_sk, X, y, l2_reg_strength=l2, n_threads=n_threads)

    value, grad = fn()
    return fn, (value, grad[:, :-1], grad[:, -1])


def torch_call(X, labels, coef, intercept, n_threads):
    """PyTorch's forward + backward of the same objective; None where it is not installed."""
    if importlib.util.find_spec("torch") is None:
        return None, None
    import torch

    torch.set_num_threads(n_threads)
    X_t = torch.from_numpy(X)  # shares X's memory
    y_t = torch.from_numpy(labels.astype(np.int64))
    W = torch.tensor(coef, dtype=X_t.dtype, requires_grad=True)
    b = torch.tensor(intercept, dtype=X_t.dtype, requires_grad=True)
    l2 = 1.0 / (C * X.shape[0])

    def fn():
        W.grad = None
        b.grad = None
        logits = torch.addmm(b, X_t, W.t())
        value = torch.nn.functional.cross_entropy(logits, y_t) + 0.5 * l2 * (W * W).sum()
        value.backward()
        return value.item()

    return fn, (fn(), W.grad.numpy(), b.grad.numpy())


def read_floor(X, n_threads, repeats, min_seconds):
    """Seconds to read X once with ``n_threads``: a sum over blocks of rows, one per thread.

    It reads every entry once and does almost nothing else, so memory bandwidth (or,
    for small X, the cache) bounds it: what the fused kernel is compared with. Not a
    BLAS ``X @ v``: OpenBLAS threads keep spinning after it and would slow down the
    OpenMP kernel timed next.
    """
    blocks = np.array_split(X, n_threads)  # views: contiguous blocks of rows
    with ThreadPoolExecutor(n_threads) as pool:  # np.sum lets go of the GIL

        def threaded_sum():
            return sum(pool.map(np.sum, blocks))

        return median_time(threaded_sum, repeats, min_seconds=min_seconds)


def agreement(ours, theirs):
    """(relative difference of the values, largest gradient difference / largest entry)."""
    value_diff = abs(ours[0] - theirs[0]) / abs(theirs[0])
    grad_scale = max(np.abs(theirs[1]).max(), np.abs(theirs[2]).max())
    grad_diff = max(np.abs(ours[1] - theirs[1]).max(), np.abs(ours[2] - theirs[2]).max())
    return value_diff, grad_diff / grad_scale


def peak_memory(X, y, make_model):
    """Peak bytes allocated during ``make_model().fit(X, y)``, beyond what existed before.

    tracemalloc sees NumPy's arrays and Python objects, not the kernels' own per-thread
    buffers (O(threads x (d + rows of a block) x k), a few hundred KB).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the shortened fits
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            make_model().fit(X, y)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peak - before


def run(problems, quick, log=print):
    """Measure everything; return ``(markdown, results)``.

    ``results["times"][(problem, dtype, threads)]`` holds the seconds of each method;
    ``results["memory"][(problem, dtype, model)]`` the peak bytes over X's bytes.
    """
    repeats = 3 if quick else 7
    min_seconds = 0.05 if quick else 0.5
    settle = SETTLE[quick]
    times, checks = {}, []
    for name in problems:
        problem = PROBLEMS[name]
        for dtype in DTYPES:
            X, y = make_problem(name, dtype, quick)
            labels = y.astype(np.intp)
            coef, intercept = random_point(X.shape[1], problem.n_classes)
            dtype_name = np.dtype(dtype).name
            for n_threads in THREADS:
                entry = {}
                ours_fn, ours_out = softmaxreg_call(X, labels, coef, intercept, n_threads)
                time.sleep(settle)
                entry["read X"] = read_floor(X, n_threads, repeats, min_seconds)
                time.sleep(settle)
                entry["softmaxreg"] = median_time(ours_fn, repeats, min_seconds=min_seconds)
                sk_fn, sk_out = sklearn_call(X, labels, coef, intercept, n_threads)
                if sk_fn is not None:
                    best = None
                    for blas in sorted({1, n_threads}):
                        time.sleep(settle)
                        with threadpool_limits(limits=blas, user_api="blas"):
                            seconds = median_time(sk_fn, repeats, min_seconds=min_seconds)
                        if best is None or seconds < best[0]:
                            best = (seconds, blas)
                    entry["scikit-learn"], entry["sklearn BLAS threads"] = best
                    if n_threads == THREADS[-1]:
                        checks.append((name, dtype_name, *agreement(ours_out, sk_out)))
                torch_fn, torch_out = torch_call(X, labels, coef, intercept, n_threads)
                if torch_fn is not None:
                    time.sleep(settle)
                    entry["PyTorch"] = median_time(torch_fn, repeats, min_seconds=min_seconds)
                times[(name, dtype_name, n_threads)] = entry
                log(f"  kernel {name} {dtype_name} {n_threads} thread(s): " + ", ".join(
                    f"{key} {ms(value)} ms" for key, value in entry.items()
                    if key != "sklearn BLAS threads"))
            del X

    memory = {}
    # P1 is the target; P4, with 5x fewer features, shows what grows with n_samples.
    for name in [name for name in ("P1", "P4") if name in problems]:
        for dtype in DTYPES:
            X, y = make_problem(name, dtype, quick)
            dtype_name = np.dtype(dtype).name
            memory[(name, dtype_name, "SoftmaxRegressor()")] = (
                peak_memory(X, y, SoftmaxRegressor) / X.nbytes, X.nbytes)
            if name == "P1" and dtype is np.float64:
                from sklearn.linear_model import LogisticRegression

                with threadpool_limits(limits=1, user_api="blas"):
                    memory[(name, dtype_name, "LogisticRegression(max_iter=5)")] = (
                        peak_memory(X, y, lambda: LogisticRegression(max_iter=5)) / X.nbytes,
                        X.nbytes)
            del X
    return report(times, checks, memory, repeats, min_seconds), {"times": times, "memory": memory}


def report(times, checks, memory, repeats, min_seconds):
    """The markdown of the kernel section."""
    rows = []
    for (name, dtype_name, n_threads), entry in times.items():
        ours = entry["softmaxreg"]
        f64 = times.get((name, "float64", n_threads), {}).get("softmaxreg")
        one = times.get((name, dtype_name, 1), {}).get("softmaxreg")
        rows.append([
            name, dtype_name, n_threads, ms(ours), ms(entry["read X"]),
            ms(entry.get("scikit-learn")), ms(entry.get("PyTorch")),
            ratio(ours, entry["read X"]), ratio(entry.get("scikit-learn"), ours),
            ratio(entry.get("PyTorch"), ours),
            ratio(f64, ours) if dtype_name == "float32" else "",
            ratio(one, ours) if n_threads > 1 else "",
        ])
    header = ["problem", "dtype", "threads", "softmaxreg ms", "read X ms", "scikit-learn ms",
              "PyTorch ms", "ours / read X", "sklearn / ours", "torch / ours",
              "f32 speedup", "thread speedup"]
    lines = [
        "## (a) Loss + gradient at one point\n",
        markdown_table(header, rows),
        "",
        f"Each time is the median of at least {repeats} runs after a warm-up (more for fast "
        f"cases, until they add up to {min_seconds:g} s). The point: coefficients and "
        "intercept drawn from N(0, 0.01^2), C = 1. softmaxreg: "
        "`LinearSoftmaxObjective.loss_gradient` (the fused kernel and the O(d k) work around "
        "it), BLAS at 1 thread. scikit-learn: `LinearModelLoss.loss_gradient` of "
        "`HalfMultinomialLoss` with `n_threads` = threads and BLAS at 1 thread or at the "
        "thread count, whichever was faster. read X: the faster of `np.sum` over blocks of "
        "rows in a thread pool and `X @ v` (BLAS), with that many threads. PyTorch: "
        "`cross_entropy` forward + backward, when installed ('-' otherwise). "
        "f32 speedup: softmaxreg float64 time / float32 time; thread speedup: 1-thread "
        "time / this time.",
    ]
    if checks:
        check_rows = []
        for name, dtype_name, value_diff, grad_diff in checks:
            limit = 1e-6 if dtype_name == "float64" else 1e-3
            verdict = "ok" if value_diff <= limit and grad_diff <= limit else "DIFFERENT"
            check_rows.append([name, dtype_name, f"{value_diff:.1e}", f"{grad_diff:.1e}",
                               f"{limit:g}", verdict])
        lines += [
            "\n### Same objective as scikit-learn\n",
            "softmaxreg's value and gradient against scikit-learn's at the same point "
            f"({THREADS[-1]} threads): relative difference of the values, and largest "
            "gradient difference over the largest gradient entry.\n",
            markdown_table(["problem", "dtype", "value rel. diff", "gradient rel. diff",
                            "limit", "check"], check_rows),
        ]
    if memory:
        mem_rows = [[name, dtype_name, model, f"{x_bytes / 2**20:.1f}",
                     f"{peak * x_bytes / 2**20:.2f}", f"{peak:.1%}"]
                    for (name, dtype_name, model), (peak, x_bytes) in memory.items()]
        lines += [
            "\n### Memory during a fit\n",
            "Peak memory allocated during the fit beyond what existed before it "
            "(tracemalloc: NumPy arrays and Python objects), against the size of X. "
            "LogisticRegression, for comparison, stopped after 5 iterations: its peak comes "
            "in the first.\n",
            markdown_table(["problem", "dtype", "fit", "X MiB", "peak above X MiB",
                            "peak / X"], mem_rows),
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="problems shrunk 20x, fewer repeats")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated names")
    args = parser.parse_args(argv)
    text, _ = run(args.problems.split(","), args.quick)
    print(text)


if __name__ == "__main__":
    main()
