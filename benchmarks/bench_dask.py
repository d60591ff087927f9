"""(g) Fits on Dask clusters, against the in-memory fit of the same data (issue 12).

Three parts, on a ``distributed.LocalCluster`` of 2 worker processes with 1 thread each
on the loopback address (this machine's 2 cores), against the in-memory fit with
``n_jobs=2`` (the same 2 cores, as OpenMP threads):

1. **A problem larger than a fit wants to copy.** 20,000,000 x 50 float32 rows (4 GB),
   10 classes, generated on the workers in chunks of 1,000,000 rows (standard normal
   features, labels drawn from a planted softmax model, each chunk from its own seed),
   fitted by ``SoftmaxRegressor(solver="lbfgs", tol=0, max_iter=ITERATIONS)`` on the
   cluster and, after gathering the same rows into the client's memory, in memory:
   equal iterations, so the times compare the same work. Each fit timed after a warm-up
   fit of one iteration; the median of ``REPEATS``. Also the time to prepare the Dask
   fit (the passes that validate, find the classes and the column moments, and persist
   the chunks), which the fit includes. Target: at most 1.3x the in-memory time.
2. **Per-evaluation overhead against the chunk count.** 2,000,000 x 50 float32 rows
   (and 20,000 rows, where the kernels take almost no time) in 2 ... 1,024 chunks:
   the median time of one loss-and-gradient evaluation on the cluster (a round trip:
   the coefficients out, one task per group of chunks, a tree sum back), and of the
   same evaluation in memory.
3. **At scale, on paper.** From the measured kernel time per row and the measured
   costs of a round trip and of a task: the time of one L-BFGS iteration for 1e10 rows
   of the same shape on 100 workers of 2 threads, with the coefficient broadcast, the
   tasks' scheduling and the tree reduction counted (assumptions in the output).

Run: ``python -P benchmarks/bench_dask.py [--quick]`` (``--quick``: 2,000,000 rows in
chunks of 100,000 for part 1, and fewer chunk counts). Writes ``results/dask.md``
(``results/quick/dask.md``). Needs ``pip install ".[dask]"``.
"""

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import busy_warning, machine_facts  # noqa: E402
from timing import markdown_table  # noqa: E402

from softmaxreg import SoftmaxRegressor  # noqa: E402

ITERATIONS = 20
REPEATS = 3
N_FEATURES, N_CLASSES = 50, 10


def planted_labels(x, block_info=None):
    """Labels of a chunk drawn from a softmax model with fixed coefficients, with Gumbel
    noise from the chunk's own seed (its position), so the data do not depend on where
    or when the chunk is made."""
    seed = block_info[0]["chunk-location"][0] if block_info else 0
    coef = np.random.default_rng(12345).normal(size=(x.shape[1], N_CLASSES)) / np.sqrt(8)
    noise = np.random.default_rng([seed, 1]).gumbel(size=(x.shape[0], N_CLASSES))
    return np.argmax(x.astype(np.float64) @ coef + noise, axis=1)


def generate(n_rows, chunk_rows):
    """X (float32) and y as Dask arrays, generated on the workers chunk by chunk."""
    import dask.array as da

    rng = da.random.default_rng(0)
    X = rng.standard_normal((n_rows, N_FEATURES), chunks=(chunk_rows, N_FEATURES),
                            dtype=np.float32)
    y = X.map_blocks(planted_labels, drop_axis=1, dtype=np.int64)
    return X, y


def timed(fn, repeats=REPEATS):
    fn_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        fn_times.append(time.perf_counter() - start)
    return statistics.median(fn_times), fn_times


def part_fit(client, n_rows, chunk_rows):
    """Part 1: the Dask fit and the in-memory fit of the same rows, equal iterations."""
    from softmaxreg import _dask_rows

    import dask

    X, y = generate(n_rows, chunk_rows)
    start = time.perf_counter()
    X, y = dask.persist(X, y)
    distributed_wait(X, y)
    made = time.perf_counter() - start
    counts = {}
    real = _dask_rows.DaskRows._compute

    def counting(self, *args):
        counts["evaluations"] = self.n_evaluations + 1
        return real(self, *args)

    _dask_rows.DaskRows._compute = counting
    params = dict(solver="lbfgs", tol=0.0, max_iter=ITERATIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: every fit stops at max_iter, by design
        SoftmaxRegressor(solver="lbfgs", tol=0.0, max_iter=1).fit(X, y)  # warm-up
        dask_time, dask_times = timed(lambda: SoftmaxRegressor(**params).fit(X, y))
        dask_model = SoftmaxRegressor(**params).fit(X, y)
        _dask_rows.DaskRows._compute = real
        evaluations = counts["evaluations"]
        # The preparation alone: a fit of 0 iterations (the passes, the persist).
        prepare, _ = timed(lambda: SoftmaxRegressor(max_iter=0).fit(X, y), repeats=1)
        start = time.perf_counter()
        X_mem, y_mem = dask.compute(X, y)
        gathered = time.perf_counter() - start
        SoftmaxRegressor(solver="lbfgs", tol=0.0, max_iter=1, n_jobs=2).fit(X_mem, y_mem)
        memory_time, memory_times = timed(
            lambda: SoftmaxRegressor(**params, n_jobs=2).fit(X_mem, y_mem))
        memory_model = SoftmaxRegressor(**params, n_jobs=2).fit(X_mem, y_mem)
    difference = float(np.abs(dask_model.coef_ - memory_model.coef_).max())
    del X_mem, y_mem
    return dict(
        n_rows=n_rows, chunk_rows=chunk_rows, n_chunks=math.ceil(n_rows / chunk_rows),
        made=made, gathered=gathered, prepare=prepare, dask=dask_time, dask_all=dask_times,
        memory=memory_time, memory_all=memory_times, evaluations=evaluations,
        difference=difference, iterations=int(dask_model.n_iter_[0]),
        memory_iterations=int(memory_model.n_iter_[0]),
    )


def distributed_wait(*collections):
    from distributed import futures_of, wait

    wait([f for c in collections for f in futures_of(c)])


def evaluation_times(client, n_rows, chunk_counts, repeats=15):
    """Part 2: one evaluation's median time on the cluster per chunk count, and in memory."""
    import dask

    from softmaxreg._dask_data import prepare_dask_fit
    from softmaxreg._rows import rows_of

    rows_out = []
    X, y = generate(n_rows, n_rows)
    X, y = dask.persist(X, y)
    X_mem, y_mem = dask.compute(X, y)
    coef = np.zeros((N_FEATURES, N_CLASSES), dtype=np.float32)
    intercept = np.zeros(N_CLASSES, dtype=np.float32)
    grad, grad_b = np.empty_like(coef), np.empty_like(intercept)
    memory = rows_of(X_mem)
    labels = y_mem.astype(np.intp)
    empty = np.empty(0, dtype=np.float32)
    memory.loss_gradient(N_CLASSES, labels, empty, coef, intercept, grad, grad_b, 2)
    memory_time, _ = timed(lambda: memory.loss_gradient(
        N_CLASSES, labels, empty, coef, intercept, grad, grad_b, 2), repeats)
    for n_chunks in chunk_counts:
        chunk_rows = math.ceil(n_rows / n_chunks)
        # The same rows, rechunked on the workers (the data never pass through the client).
        dX, dy = X.rechunk((chunk_rows, -1)), y.rechunk(chunk_rows)
        dX, dy = dask.persist(dX, dy)
        distributed_wait(dX, dy)
        data = prepare_dask_fit(SoftmaxRegressor(), dX, dy, None)
        rows = data.rows

        def evaluate():
            rows.loss_gradient(N_CLASSES, None, None, coef, intercept, grad, grad_b, 1)

        evaluate()
        median, _ = timed(evaluate, repeats)
        rows_out.append(dict(n_rows=n_rows, n_chunks=dX.numblocks[0], groups=len(rows.groups),
                             dask=median, memory=memory_time))
        del data, rows, dX, dy
    return rows_out


def round_trip(client, repeats=30):
    """The median time of a trivial task's round trip, and of scheduling 200 tasks."""
    client.submit(int, 1, pure=False).result()
    one, _ = timed(lambda: client.submit(int, 1, pure=False).result(), repeats)
    many, _ = timed(lambda: client.gather(client.map(int, range(200), pure=False)), 5)
    return one, many / 200


def at_scale(fit, evaluations, trip, per_task):
    """Part 3 on paper: one L-BFGS iteration, 1e10 rows x 50 features x 10 classes on
    100 workers of 2 threads."""
    rows_per_thread_second = fit["n_rows"] / (fit["memory"] / fit["memory_iterations"]
                                              / (fit["evaluations"] / fit["iterations"])) / 2
    n_rows, workers, threads = 1e10, 100, 2
    evaluations_per_iteration = fit["evaluations"] / fit["iterations"]
    compute = n_rows / (workers * threads) / rows_per_thread_second
    groups = workers * threads
    tasks = groups + sum(math.ceil(groups / 8**level) for level in range(1, 4))
    scheduling = tasks * per_task
    params_bytes = (N_FEATURES + 1) * N_CLASSES * 8
    bandwidth = 1e9  # bytes per second, 10 GbE
    latency = 1e-3   # one network hop between machines, seconds (rounded up)
    broadcast = latency + params_bytes * workers / bandwidth  # from one sender
    tree = math.ceil(math.log(groups, 8)) * (latency + 8 * params_bytes / bandwidth)
    per_evaluation = compute + scheduling + broadcast + tree + trip
    return dict(
        rows_per_thread_second=rows_per_thread_second, compute=compute, tasks=tasks,
        scheduling=scheduling, broadcast=broadcast, tree=tree, trip=trip,
        per_evaluation=per_evaluation, evaluations_per_iteration=evaluations_per_iteration,
        per_iteration=per_evaluation * evaluations_per_iteration,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    try:
        import dask.array  # noqa: F401
        from distributed import Client, LocalCluster
    except ImportError:
        sys.exit("bench_dask.py needs Dask: pip install '.[dask]'")
    n_rows, chunk_rows = (2_000_000, 100_000) if args.quick else (20_000_000, 1_000_000)
    chunk_counts = [2, 8, 32, 128] if args.quick else [2, 8, 32, 128, 512, 1024]
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    warning = busy_warning()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", memory_limit=0) as cluster, \
            Client(cluster) as client:
        fit = part_fit(client, n_rows, chunk_rows)
        print(fit, flush=True)
        trip, per_task = round_trip(client)
        overhead = (evaluation_times(client, 2_000_000, chunk_counts)
                    + evaluation_times(client, 20_000, chunk_counts[:4]))
        print(overhead, flush=True)
    scale = at_scale(fit, fit["evaluations"], trip, per_task)
    ratio = fit["dask"] / fit["memory"]
    lines = [
        "# Dask fits against in-memory fits (benchmarks/bench_dask.py)",
        "",
        *machine_facts(class_counts=[N_CLASSES]),
        warning,
        "",
        "## 1. 20,000,000 x 50 float32, 10 classes (4 GB)" if not args.quick else
        "## 1. 2,000,000 x 50 float32, 10 classes (--quick)",
        "",
        f"LocalCluster: 2 worker processes x 1 thread, loopback. In memory: n_jobs=2. "
        f"L-BFGS, tol=0, max_iter={ITERATIONS} (equal iterations); median of {REPEATS} "
        "after a warm-up.",
        "",
        markdown_table(
            ["", "time (s)", "runs (s)", "iterations", "evaluations"],
            [["Dask fit (prepare included)", f"{fit['dask']:.2f}",
              ", ".join(f"{t:.2f}" for t in fit["dask_all"]), fit["iterations"],
              fit["evaluations"]],
             ["in-memory fit", f"{fit['memory']:.2f}",
              ", ".join(f"{t:.2f}" for t in fit["memory_all"]), fit["memory_iterations"], "-"]],
        ),
        "",
        f"**Dask / in memory: {ratio:.2f}x** (target: at most 1.3x). Of the Dask fit, "
        f"{fit['prepare']:.2f} s prepare the data (validation and classes, then column "
        f"moments and the persisted chunks, {fit['n_chunks']} chunks of {fit['chunk_rows']:,} "
        f"rows). Generating the rows on the workers took {fit['made']:.2f} s, gathering "
        f"them to the client {fit['gathered']:.2f} s. Largest |coef| difference between "
        f"the two models: {fit['difference']:.1e}.",
        "",
        "## 2. One evaluation (loss and gradient) against the chunk count",
        "",
        markdown_table(
            ["rows", "chunks", "groups (tasks)", "Dask (ms)", "in memory (ms)",
             "overhead (ms)"],
            [[f"{r['n_rows']:,}", r["n_chunks"], r["groups"], f"{1e3 * r['dask']:.1f}",
              f"{1e3 * r['memory']:.1f}", f"{1e3 * (r['dask'] - r['memory']):.1f}"]
             for r in overhead],
        ),
        "",
        f"A trivial task's round trip on this cluster: {1e3 * trip:.1f} ms; scheduling "
        f"a task, in a batch of 200: {1e3 * per_task:.2f} ms.",
        "",
        "## 3. At scale, on paper: 1e10 rows x 50 features, 10 classes, 100 workers x 2 threads",
        "",
        markdown_table(
            ["part", "seconds per evaluation", "how"],
            [["kernels", f"{scale['compute']:.2f}",
              f"1e10 rows / 200 threads at {scale['rows_per_thread_second']:.3g} rows per "
              "thread-second (part 1, in memory)"],
             ["scheduling", f"{scale['scheduling']:.3f}",
              f"{scale['tasks']} tasks (200 groups + the tree's nodes) x "
              f"{1e3 * per_task:.2f} ms (measured here)"],
             ["coefficient broadcast", f"{scale['broadcast']:.4f}",
              "1 ms latency + 4 KB x 100 workers at 1 GB/s"],
             ["tree reduction", f"{scale['tree']:.4f}",
              "3 levels of fan-in 8, each 1 ms + 8 x 4 KB at 1 GB/s"],
             ["client round trip", f"{scale['trip']:.3f}", "measured here"],
             ["**one evaluation**", f"**{scale['per_evaluation']:.2f}**", ""],
             ["**one L-BFGS iteration**", f"**{scale['per_iteration']:.2f}**",
              f"{scale['evaluations_per_iteration']:.2f} evaluations per iteration "
              "(part 1)"]],
        ),
        "",
        "Assumptions: the workers' cores as fast as this machine's; 10 GbE (1 GB/s, 1 ms "
        "per hop); the scheduler's cost per task as measured here (a busy 2-core machine "
        "running the scheduler, both workers and the client: an overestimate). What the "
        f"cluster adds to the kernels: {scale['per_evaluation'] - scale['compute']:.2f} s "
        f"per evaluation, {100 * (1 - scale['compute'] / scale['per_evaluation']):.0f}% "
        "of it.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "dask.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
