"""What a fit needs from its data, whatever the storage: classes, labels, weights, moments.

``SoftmaxRegressor.fit`` prepares a :class:`FitData` from in-memory X (``_estimator``)
or from Dask arrays (``_dask_data``), then fits it the same way. The rules here (which
labels are classes, how class weights multiply sample weights, which columns are
fitted) are shared by both, so a Dask fit is the in-memory fit of the same data.
"""

import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets


@dataclass
class FitData:
    """The data of one fit, prepared for ``LinearSoftmaxObjective``.

    Attributes
    ----------
    rows : ndarray, ``_rows.CsrRows`` or ``_dask_rows.DaskRows``
        The rows the objective sums over (columns of extreme magnitude already scaled by
        ``2**-column_exponents``, and only the ``stored`` columns where given).
    labels : ndarray of shape (n_samples,), intp, or None
        Class indices; None where ``rows`` hold them (Dask chunks).
    sample_weight : ndarray of shape (n_samples,) or (0,), dtype of X, or None
        The weights (sample times class weights, scaled to at most 1); empty for unit
        weights; None where ``rows`` hold them.
    weight_sum : float
        S, the sum of the weights.
    classes : ndarray of shape (n_classes,)
    C : float
        ``C`` scaled the other way from the weights (the same model).
    mean, std : ndarrays of shape (n_fitted_columns,), float64
        The weighted column moments of the fitted columns (as scaled).
    magnitude : ndarray of shape (n_features,), float64
        The largest magnitude of every column of X (on rows of positive weight).
    column_exponents : ndarray of int or None
        Per fitted column, the power of two it was scaled down by (``_rescaling``).
    stored : ndarray of intp or None
        For sparse X, the columns fitted (those with an entry); None for all.
    n_features : int
        Columns of X.
    dtype : numpy dtype
        float32 or float64: the dtype of X, the kernels and the model.
    description : str
        The data in a few words, for the verbose header.
    all_classes : bool
        Whether every class has a sample of positive weight (always, but in a chunk of
        ``partial_fit``).
    """

    rows: object
    labels: object
    sample_weight: object
    weight_sum: float
    classes: np.ndarray
    C: float
    mean: np.ndarray
    std: np.ndarray
    magnitude: np.ndarray
    column_exponents: object
    stored: object
    n_features: int
    dtype: np.dtype
    description: str
    all_classes: bool = True


def is_dask_array(X):
    """Whether X is a ``dask.array.Array``, without importing Dask (X cannot be one
    unless Dask was imported already)."""
    array = getattr(sys.modules.get("dask.array"), "Array", None)
    return array is not None and isinstance(X, array)


def check_not_dask_dataframe(X):
    """A TypeError for a Dask DataFrame, which would otherwise be computed into memory
    whole, its column names lost."""
    if type(X).__module__.split(".")[0] == "dask" and hasattr(X, "to_dask_array"):
        raise TypeError(
            "X is a Dask DataFrame: pass X.to_dask_array(lengths=True), a Dask array with "
            "known chunk sizes, which is fitted where its chunks live (or X.compute() for "
            "an in-memory fit)."
        )


def check_targets(y):
    """``np.unique(y)``, after scikit-learn's check that y holds classes.

    For integer and boolean y there is nothing to check, and for float y only that
    every class is a whole number, which ``np.unique`` tells at a fraction of the cost of
    ``check_classification_targets`` (1 ms on 16,000 labels, a tenth of a small fit);
    other dtypes go through scikit-learn's check. The check on the classes alone is the
    check on y: a label's type does not depend on how often it occurs.
    """
    if y.dtype.kind not in "biuf":
        check_classification_targets(y)
        return np.unique(y)
    classes = np.unique(y)
    if y.dtype.kind == "f" and not np.array_equal(classes, np.floor(classes)):
        check_classification_targets(y)  # raises scikit-learn's "Unknown label type" error
    return classes


def check_two_classes(classes):
    """A ValueError where the data hold fewer than two classes."""
    if classes.shape[0] < 2:
        raise ValueError(
            "SoftmaxRegressor needs samples of at least 2 classes in the data, "
            f"but the data contain only one class: {classes[0]!r}."
        )


def labels_of(y, classes):
    """The index of each label in ``classes``, as intp (y itself where it already is)."""
    n_classes = classes.shape[0]
    if y.dtype.kind in "iu" and n_classes and classes[0] == 0 and classes[-1] == n_classes - 1:
        return y.astype(np.intp, copy=False)
    # Not np.unique(..., return_inverse=True): its temporaries are 5 arrays of n.
    return np.searchsorted(classes, y)


def class_weights(class_weight, classes, counts):
    """Weight of each class (aligned with ``classes``), as ``LogisticRegression`` computes it.

    Parameters
    ----------
    class_weight : dict or "balanced"
    classes : ndarray of shape (n_classes,)
    counts : ndarray of shape (n_classes,), float64
        The (weighted) count of each class: "balanced" gives class c the weight
        ``sum(counts) / (n_classes * counts[c])`` (0 for an empty class).
    """
    if isinstance(class_weight, str):  # "balanced", with weighted counts
        with np.errstate(divide="ignore"):
            weights = counts.sum() / (classes.shape[0] * counts)
        return np.where(counts > 0, weights, 0.0)
    unknown = [key for key in class_weight if not np.isin(key, classes).any()]
    if unknown:
        raise ValueError(
            f"class_weight has keys {unknown} that are not classes of y; the classes are "
            f"{classes.tolist()}."
        )
    weights = np.array([class_weight.get(c, 1.0) for c in classes.tolist()], dtype=np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("class_weight values must be finite and non-negative.")
    return weights


def check_positive_classes(positive):
    """Errors where the weights leave nothing, or a single class, to fit.

    Parameters
    ----------
    positive : ndarray of shape (n_classes,), bool
        Whether each class has a sample of positive weight.
    """
    if not positive.any():
        raise ValueError(
            "class_weight and sample_weight together give every sample weight 0: "
            "there is nothing to fit."
        )
    if np.count_nonzero(positive) < 2:
        raise ValueError(
            "The weights leave samples of a single class (every other class has "
            "weight 0): SoftmaxRegressor needs at least 2 classes of positive weight."
        )


def stored_columns(sparse, magnitude):
    """For sparse X with columns that hold no non-zero value on a row of positive weight,
    the sorted indices of the others (at least one, so that the model keeps a column);
    None for dense X or where every column holds one."""
    if not sparse:
        return None
    stored = np.flatnonzero(magnitude > 0)
    if stored.shape[0] == magnitude.shape[0]:
        return None
    return stored if stored.shape[0] else np.zeros(1, dtype=np.intp)


def canonical(X):
    """X, or for a CSR matrix with duplicate entries, a copy with them summed (the one
    copy sparse X may get: the column moments count entries, not their sums)."""
    if sp.issparse(X) and not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X
