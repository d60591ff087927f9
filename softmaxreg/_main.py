"""``python -m softmaxreg``: SoftmaxRegressor against LogisticRegression on bundled data."""

import argparse
import math
import statistics
import time
import warnings

import numpy as np
import sklearn
from scipy.special import logsumexp
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ._estimator import SoftmaxRegressor
from ._kernels import openmp_enabled
from ._threads import available_cpus, n_threads_from_n_jobs

DATASET_LOADERS = {
    "digits": datasets.load_digits,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
    "breast_cancer": datasets.load_breast_cancer,
}


def checked(convert, accept, requirement):
    """Return an argparse ``type``: ``convert`` the text, then require ``accept(value)``."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {convert.__name__}: {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return parse


def build_parser():
    """Return the argument parser of ``python -m softmaxreg``."""
    parser = argparse.ArgumentParser(
        prog="python -m softmaxreg",
        description="Fit SoftmaxRegressor and scikit-learn's LogisticRegression (lbfgs) on a "
        "bundled scikit-learn dataset, standardized (or raw, with --raw), and compare "
        "accuracy, log-loss, fit time and the fitted models. Runs offline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--dataset", choices=sorted(DATASET_LOADERS), default="digits", help="bundled dataset")
    add("--raw", action="store_true",
        help="fit the raw features, without StandardScaler: SoftmaxRegressor standardizes "
        "internally; LogisticRegression stops far from the optimum (its absolute test, "
        "or max_iter at its own default of 100)")
    add("--C", type=checked(float, lambda v: 0 < v < math.inf, "> 0"), default=1.0,
        help="inverse regularization strength of both models")
    add("--tol", type=checked(float, lambda v: 0 <= v < math.inf, ">= 0"), default=1e-4,
        help="stopping tolerance of both models")
    add("--max-iter", type=checked(int, lambda v: v >= 1, ">= 1"), default=1000,
        help="iteration cap of both models; on standardized digits both converge in ~30 "
        "iterations at tol=1e-4 and ~150 at tol=1e-8, so 1000 leaves room for a tighter "
        "--tol while a ConvergenceWarning still means a real problem")
    add("--n-jobs", type=checked(int, lambda v: v != 0, "a non-zero int"), default=None,
        help="OpenMP threads of SoftmaxRegressor (None: all allowed, -1: every CPU)")
    add("--repeats", type=checked(int, lambda v: v >= 1, ">= 1"), default=5,
        help="timed fits per model, after one untimed warm-up; the median is reported")
    add("--test-size", type=checked(float, lambda v: 0 < v < 1, "in (0, 1)"), default=0.25,
        help="fraction of the samples held out for testing")
    add("--random-state", type=checked(int, lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
        default=0, help="seed of the train/test split")
    return parser


def load_split(dataset, test_size, random_state):
    """Load a bundled dataset and return ``X_train, X_test, y_train, y_test`` (stratified)."""
    X, y = DATASET_LOADERS[dataset](return_X_y=True)
    return train_test_split(X, y, test_size=test_size, random_state=random_state, stratify=y)


def make_models(args):
    """Return ``{name: pipeline}``: StandardScaler (unless ``args.raw``) followed by each
    classifier (with two classes, both fit the binomial model)."""
    common = {"tol": args.tol, "max_iter": args.max_iter}
    ours = SoftmaxRegressor(C=args.C, n_jobs=args.n_jobs, **common)
    reference = LogisticRegression(C=args.C, **common)
    scaler = [] if args.raw else [StandardScaler()]
    return {"SoftmaxRegressor": make_pipeline(*scaler, ours),
            "LogisticRegression": make_pipeline(*scaler, reference)}


def fit_seconds(pipeline, X, y, repeats, quiet=False):
    """Fit once untimed, then ``repeats`` times; return the wall-clock seconds of each.

    BLAS is held to one thread (set outside the timed region): on a few cores, OpenBLAS
    threads slow LogisticRegression down ~10x, which would flatter us. The warm-up
    shows any ConvergenceWarning (unless ``quiet``: a fit stopped short of its tol on
    purpose); the identical timed fits do not repeat it.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        The model to fit, refitted in place.
    X, y : ndarray
        Training data and labels.
    repeats : int
        Number of timed fits, at least 1.

    Returns
    -------
    seconds : list of float
        Wall-clock time of each timed fit, by ``time.perf_counter``.
    """
    seconds = []
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(X, y)
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(repeats):
            start = time.perf_counter()
            pipeline.fit(X, y)
            seconds.append(time.perf_counter() - start)
    return seconds


def max_iter_to_gap(pipeline, X, y, gap_of, target, upper):
    """The smallest ``max_iter`` at which ``pipeline`` reaches an objective gap of at most
    ``target``, given that it does at ``upper``.

    Both models' iterates do not depend on ``max_iter`` (a larger one continues the
    same sequence, and their objectives do not increase along it), so this is a
    bisection, and the fit with that ``max_iter`` is the time the model takes to
    reach the gap.
    """
    model = pipeline.steps[-1][0]
    lo, hi = 0, upper
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while hi - lo > 1:
            middle = (lo + hi) // 2
            pipeline.set_params(**{f"{model}__max_iter": middle}).fit(X, y)
            if gap_of(pipeline) <= target:
                hi = middle
            else:
                lo = middle
    return hi


def softmax_objective(X, labels, coef, intercept, C):
    """``C sum_i CE(softmax(x_i coef^T + b), y_i) + ||coef||^2 / 2`` in float64.

    A binomial model (one row of ``coef``) has logits ``[0, x_i coef^T + b]``.
    """
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):  # no BLAS threads left spinning
        logits = np.asarray(X, dtype=np.float64) @ coef.T + intercept
    if coef.shape[0] == 1:
        logits = np.hstack([np.zeros_like(logits), logits])
    cross_entropy = logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]
    return float(C * cross_entropy.sum() + 0.5 * np.sum(coef * coef))


def gap_functions(models, X_train, y_train, C):
    """Return ``{name: gap(pipeline)}``: a fitted pipeline's relative objective gap on the
    training data, ``(F - F*) / F*``.

    F* is the objective of a SoftmaxRegressor fitted with ``tol=1e-10``: how close a
    fit came to the minimum that both models share (gaps below F*'s own accuracy
    read as 0).
    """
    features = {name: pipeline[:-1].transform(X_train) if len(pipeline) > 1 else X_train
                for name, pipeline in models.items()}
    ours = models["SoftmaxRegressor"][-1]
    labels = np.searchsorted(ours.classes_, y_train)
    tight = SoftmaxRegressor(C=C, tol=1e-10, max_iter=10_000, n_jobs=ours.n_jobs)
    tight.fit(features["SoftmaxRegressor"], y_train)
    best = softmax_objective(features["SoftmaxRegressor"], labels, tight.coef_, tight.intercept_, C)

    def gap(name):
        def of(pipeline):
            value = softmax_objective(features[name], labels, pipeline[-1].coef_,
                                      pipeline[-1].intercept_, C)
            return max(value - best, 0.0) / abs(best)
        return of

    return {name: gap(name) for name in models}


def same_gap_seconds(models, X, y, gaps, gap_functions, default_seconds, repeats):
    """Each model's fit time to the larger of the two default gaps (the one both reach):
    its default fit where that is its own gap, else the fit with the smallest
    ``max_iter`` that reaches it. Returns ``(target, {name: seconds}, {name: max_iter})``."""
    target = max(gaps.values())
    seconds, iterations = {}, {}
    for name, pipeline in models.items():
        model = pipeline.steps[-1][0]
        n_iter = int(np.max(pipeline[-1].n_iter_))
        if gaps[name] >= target:
            seconds[name], iterations[name] = default_seconds[name], n_iter
            continue
        default_max_iter = pipeline[-1].max_iter
        m = max_iter_to_gap(pipeline, X, y, gap_functions[name], target, n_iter)
        pipeline.set_params(**{f"{model}__max_iter": m})
        seconds[name], iterations[name] = fit_seconds(pipeline, X, y, repeats, quiet=True), m
        with warnings.catch_warnings():  # its default fit again, as reported above
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.set_params(**{f"{model}__max_iter": default_max_iter}).fit(X, y)
    return target, seconds, iterations


def table_rows(models, seconds, gaps, X_test, y_test, same_gap):
    """Return one list of table cells per model; speedups are relative to LogisticRegression.

    ``seconds`` and ``same_gap[1]`` hold each model's lists of timed fits: the median is
    shown with the range of the repeats.
    """
    _, to_gap, to_gap_iter = same_gap

    def spread(values):
        return (f"{statistics.median(values) * 1e3:.2f} "
                f"({min(values) * 1e3:.2f}-{max(values) * 1e3:.2f})")

    median = {name: statistics.median(values) for name, values in seconds.items()}
    median_gap = {name: statistics.median(values) for name, values in to_gap.items()}
    return [[name,
             f"{accuracy_score(y_test, pipeline.predict(X_test)):.4f}",
             f"{log_loss(y_test, pipeline.predict_proba(X_test), labels=pipeline.classes_):.4f}",
             f"{gaps[name]:.1e}",
             str(int(np.max(pipeline[-1].n_iter_))),
             spread(seconds[name]),
             f"{median['LogisticRegression'] / median[name]:.2f}x",
             f"{spread(to_gap[name])} ({to_gap_iter[name]} it.)",
             f"{median_gap['LogisticRegression'] / median_gap[name]:.2f}x"]
            for name, pipeline in models.items()]


def markdown_table(header, rows):
    """Format ``header`` and ``rows`` (lists of strings) as a markdown table."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [[cell.ljust(width) for cell, width in zip(row, widths)] for row in [header, *rows]]
    lines.insert(1, ["-" * width for width in widths])
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def model_differences(models, X_test):
    """Return the largest absolute differences of coef_ and of test probabilities."""
    ours, theirs = models["SoftmaxRegressor"], models["LogisticRegression"]
    coef_diff = np.max(np.abs(ours[-1].coef_ - theirs[-1].coef_))
    proba_diff = np.max(np.abs(ours.predict_proba(X_test) - theirs.predict_proba(X_test)))
    return coef_diff, proba_diff


def machine_facts(n_jobs):
    """Return one line: CPUs, OpenMP, threads used and library versions."""
    return (f"machine: {available_cpus()} CPUs, OpenMP {'on' if openmp_enabled() else 'off'}, "
            f"SoftmaxRegressor threads: up to {n_threads_from_n_jobs(n_jobs)}"
            f"{' (fewer for small kernel calls, or CPUs that other processes keep busy)' if n_jobs is None else ''}, "
            "BLAS threads: 1, "
            f"numpy {np.__version__}, scikit-learn {sklearn.__version__}")


def main(argv=None):
    """Compare SoftmaxRegressor with LogisticRegression and print a report.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0. Invalid arguments exit with status 2 through argparse.
    """
    args = build_parser().parse_args(argv)
    X_train, X_test, y_train, y_test = load_split(args.dataset, args.test_size, args.random_state)
    n_classes = np.unique(y_train).shape[0]
    models = make_models(args)
    seconds = {name: fit_seconds(pipeline, X_train, y_train, args.repeats)
               for name, pipeline in models.items()}
    gap_of = gap_functions(models, X_train, y_train, args.C)
    gaps = {name: gap_of[name](pipeline) for name, pipeline in models.items()}
    same_gap = same_gap_seconds(models, X_train, y_train, gaps, gap_of, seconds, args.repeats)
    coef_diff, proba_diff = model_differences(models, X_test)
    print(f"{args.dataset}: {X_train.shape[0]} train / {X_test.shape[0]} test samples, "
          f"{X_train.shape[1]} features, {n_classes} classes; "
          f"{'raw features' if args.raw else 'StandardScaler + model'}, "
          f"C={args.C:g}, tol={args.tol:g}, max_iter={args.max_iter}\n")
    header = ["model", "test accuracy", "test log-loss", "objective gap", "n_iter",
              "fit ms (range)", "speedup", f"ms to gap {same_gap[0]:.1e}", "speedup at that gap"]
    print(markdown_table(header, table_rows(models, seconds, gaps, X_test, y_test, same_gap)))
    print(f"\nfit ms: median (and range) of {args.repeats} pipeline fits after a warm-up, at "
          "each model's defaults (with the tol and max_iter above). objective gap: (F - F*) / "
          "F* on the training data, F = C sum(cross-entropy) + ||coef||^2 / 2 (the objective "
          "both models minimize), F* its minimum. The two models stop by different rules "
          "(SoftmaxRegressor's test is relative to F and also applies to standardized "
          "coordinates), so they stop at different gaps; 'ms to gap' times each model to the "
          "larger of the two gaps, which both reach (the fit with the smallest max_iter that "
          "gets there): the comparison at equal accuracy. BLAS is limited to 1 thread for "
          "both (threadpoolctl): multithreaded OpenBLAS makes LogisticRegression ~10x slower "
          "on a few cores and would inflate the speedup.")
    print(f"max |coef_ difference|: {coef_diff:.2e}, "
          f"max |predict_proba difference|: {proba_diff:.2e}")
    print(machine_facts(args.n_jobs))
    return 0
