"""(e) Sparse problems (issue 10): default fits on text, hashed and one-hot data.

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

Each method's default fit is timed once (these fits take seconds to minutes), with its
final objective ``C sum_i CE_i + ||W||^2 / 2``, its gap to the least objective any
method reached, and the peak memory it allocated beyond X (tracemalloc).
``LogisticRegression`` runs with BLAS at one thread.

Run: ``python -P benchmarks/bench_sparse.py [--problems debian,hashed,onehot] [--quick]``.
Writes ``results/sparse.md``.
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
        frame = frame.sample(n=10_000, random_state=0)
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
    classes = model.classes_
    labels = np.searchsorted(classes, y)
    with threadpool_limits(limits=1, user_api="blas"):
        logits = np.asarray(X @ model.coef_.T.astype(np.float64)) + model.intercept_
    if logits.shape[1] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    ce = logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]
    return float(C * ce.sum() + 0.5 * np.sum(model.coef_.astype(np.float64) ** 2))


METHODS = {
    "SoftmaxRegressor()": lambda: SoftmaxRegressor(),
    "LogisticRegression() (lbfgs)": lambda: LogisticRegression(),
    "LogisticRegression(solver='saga')": lambda: LogisticRegression(solver="saga"),
}


def run(names, quick, log=print):
    rows, skipped = [], []
    for name in names:
        data, reason = PROBLEMS[name](quick)
        if data is None:
            skipped.append(f"{name}: skipped, {reason}")
            log(skipped[-1])
            continue
        X, y = data
        log(f"{name}: {X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} non-zeros, "
            f"{len(np.unique(y))} classes")
        results = {}
        for label, make in METHODS.items():
            model = make()
            tracemalloc.start()
            start = time.perf_counter()
            with threadpool_limits(limits=1, user_api="blas"), \
                    warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(X, y)
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            results[label] = (seconds, objective(X, y, model), int(np.max(model.n_iter_)),
                              warned, peak)
            log(f"  {label}: {seconds:.2f} s")
        best = min(r[1] for r in results.values())
        ours = results["SoftmaxRegressor()"][0]
        for label, (seconds, value, n_iter, warned, peak) in results.items():
            rows.append([name, label, f"{seconds:.2f}", f"{seconds / ours:.2f}x",
                         f"{n_iter}{' (warned)' if warned else ''}", f"{value:.6g}",
                         f"{(value - best) / best:.1e}", f"{peak / 2**20:.0f}"])
    text = ("### Sparse problems: default fits (BLAS at one thread)\n\n" + markdown_table(
        ["problem", "method", "seconds", "/ SoftmaxRegressor", "iterations", "objective",
         "gap to the best", "peak MiB beyond X"], rows))
    if skipped:
        text += "\n\n" + "\n".join(skipped)
    return text + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    text = run(args.problems.split(","), args.quick, log)
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sparse.md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
