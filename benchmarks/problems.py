"""The benchmark problems: synthetic data from make_classification, and digits.

Every problem is generated with a fixed seed and cached as .npy under
``results/cache/``, so that every run of the suite sees the same numbers. float32
data are the float64 data rounded once. Most are standardized (each feature to mean
0 and variance 1, as one would before fitting LogisticRegression); the two "raw"
ones are not, as users often fit: digits' pixel counts 0-16, and a synthetic problem
whose features are scaled by factors from 1e-3 to 1e3.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from sklearn.datasets import load_digits, make_classification
from threadpoolctl import threadpool_limits

CACHE = Path(__file__).resolve().parent / "results" / "cache"

# --quick divides the number of samples of the synthetic problems by this.
QUICK_SHRINK = 20


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: ``n_samples`` x ``n_features`` data with ``n_classes``."""

    name: str
    n_samples: int
    n_features: int
    n_classes: int
    synthetic: bool = True
    raw: bool = False  # features left as they are (digits) or scaled 1e-3 .. 1e3 (synthetic)

    @property
    def n(self):
        return self.n_samples

    @property
    def d(self):
        return self.n_features

    @property
    def k(self):
        return self.n_classes

    def shape(self, quick):
        """(n_samples, n_features) as generated in this mode."""
        if self.synthetic and quick:
            return self.n_samples // QUICK_SHRINK, self.n_features
        return self.n_samples, self.n_features

    def describe(self, quick):
        n, d = self.shape(quick)
        return f"{self.name} ({n:,} x {d}, {self.n_classes} classes)"


PROBLEMS = {
    p.name: p
    for p in [
        Problem("P1", 200_000, 100, 10),
        Problem("P2", 50_000, 784, 10),
        Problem("P3", 20_000, 500, 100),
        Problem("P4", 1_000_000, 20, 3),
        Problem("digits", 1797, 64, 10, synthetic=False),
        Problem("digits-raw", 1797, 64, 10, synthetic=False, raw=True),
        Problem("scaled", 20_000, 50, 5, raw=True),
    ]
}


def n_informative(problem):
    """Informative features of a synthetic problem.

    At most 32: the class centroids sit on vertices of a hypercube in this many
    dimensions, so many more would make the classes far apart and the problem nearly
    separable, unlike real data. At least enough that make_classification can place
    one cluster per class on distinct vertices (2**n_informative >= n_classes).
    """
    return max(min(problem.n_features // 2, 32), int(np.ceil(np.log2(problem.n_classes))))


def _generate(problem, quick):
    if not problem.synthetic:
        X, y = load_digits(return_X_y=True)
    else:
        n, d = problem.shape(quick)
        X, y = make_classification(
            n_samples=n,
            n_features=d,
            n_informative=n_informative(problem),
            n_classes=problem.n_classes,
            n_clusters_per_class=1,
            random_state=0,
        )
    X = np.asarray(X, dtype=np.float64)
    if problem.raw:
        if problem.synthetic:
            rng = np.random.default_rng(0)
            X *= rng.permutation(np.logspace(-3, 3, X.shape[1]))
        return np.ascontiguousarray(X), np.asarray(y, dtype=np.int64)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[std == 0] = 1.0  # digits has constant pixels
    X -= mean
    X /= std
    return np.ascontiguousarray(X), np.asarray(y, dtype=np.int64)


def make_problem(name, dtype=np.float64, quick=False):
    """Data of problem ``name`` in ``dtype``, C-contiguous, and its integer labels.

    Parameters
    ----------
    name : str
        A key of ``PROBLEMS``.
    dtype : {np.float64, np.float32}
        dtype of X.
    quick : bool
        Shrink the synthetic problems by ``QUICK_SHRINK`` in the number of samples.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int64, classes 0 .. n_classes - 1
    """
    problem = PROBLEMS[name]
    stem = f"{name}{'-quick' if quick and problem.synthetic else ''}"
    x_path, y_path = CACHE / f"{stem}-X.npy", CACHE / f"{stem}-y.npy"
    if x_path.exists() and y_path.exists():
        X, y = np.load(x_path), np.load(y_path)
    else:
        X, y = _generate(problem, quick)
        CACHE.mkdir(parents=True, exist_ok=True)
        # Write to a temporary name first, so an interrupted run leaves no half file.
        for path, array in [(x_path, X), (y_path, y)]:
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                np.save(f, array)
            tmp.replace(path)
    if X.shape != problem.shape(quick) or np.unique(y).shape[0] != problem.n_classes:
        raise RuntimeError(f"cached data for {name} in {CACHE} do not match; delete the folder")
    return np.ascontiguousarray(X, dtype=dtype), y


def objective(X, y, coef, intercept, C=1.0):
    """LogisticRegression's multinomial objective ``C sum_i CE_i + ||coef||^2 / 2``.

    Computed in float64 with a stable log-sum-exp, whatever the dtype of X or coef, with
    BLAS at one thread: OpenBLAS's threads spin for ~0.1 s after a product, on the cores
    that the next timed fit needs.
    """
    coef = np.asarray(coef, dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        logits = np.asarray(X, dtype=np.float64) @ coef.T
    logits += np.asarray(intercept, dtype=np.float64)
    cross_entropy = logsumexp(logits, axis=1) - logits[np.arange(logits.shape[0]), y]
    return float(C * cross_entropy.sum() + 0.5 * np.sum(coef * coef))
