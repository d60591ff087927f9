"""Dask arrays in, a fit's data out (``_fit_data.FitData``), and predictions mapped back.

``SoftmaxRegressor.fit`` imports this module only when X is a ``dask.array.Array``;
the in-memory path never imports Dask. The data stay on the workers. Two passes
prepare a fit, on whatever scheduler Dask uses (the current ``distributed.Client``,
or the local threads without one):

1. Each chunk of X and y is validated as in memory (scikit-learn's ``check_X_y``, so
   NaN, infinity or a length mismatch give the same errors), and gives its labels'
   values with their (weighted) counts and its largest weight. The classes are the
   union, found before any label is mapped, so a label that occurs in a single chunk is
   a class like any other.
2. The chunks are persisted as ``_dask_rows.Chunk`` objects (labels as class indices,
   the final weights), and give their column moments, merged by
   ``_preconditioning.merge_column_moments``.

The weights follow the in-memory rules exactly (``_fit_data``, ``_rescaling``):
scaled by the same power of two, times the same class weights. Then the solver runs on
the client over ``_dask_rows.DaskRows``.
"""

import copy
import math
import warnings

import dask
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.validation import check_array, check_X_y, validate_data

from ._dask_rows import Chunk, DaskRows, chunk_threads
from ._fit_data import (
    FitData, canonical, check_positive_classes, check_targets, check_two_classes,
    class_weights, labels_of, stored_columns,
)
from ._preconditioning import column_moments, merge_column_moments
from ._rescaling import extreme_exponents, normalize_weights, scale_columns
from ._threads import n_threads_from_n_jobs
from ._validation import check_sample_weight

_NAME = "SoftmaxRegressor"


def _fit_dtype(X):
    """float32 and float64 stay; any other real dtype is fitted in float64 (as in memory)."""
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got a Dask array of dtype {X.dtype}.")
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def check_dask_X(X, name="X"):
    """Errors for a Dask array X that the fit cannot take: not 2-D, chunked along its
    columns, chunks of unknown size, or no rows."""
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a Dask array of shape {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
            f"(shape={X.shape}) while a minimum of 1 is required by {_NAME}.")
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has chunks of unknown size (NaN in {name}.chunks): call "
            f"{name}.compute_chunk_sizes() first, or build it with known lengths "
            "(for a Dask DataFrame, .to_dask_array(lengths=True))."
        )
    if len(X.chunks[1]) != 1:
        raise ValueError(
            f"{name} must be chunked by rows only, one chunk over all {X.shape[1]} "
            f"columns; it has {len(X.chunks[1])} chunks along its columns: use "
            f"{name}.rechunk({{1: -1}})."
        )


def _check_length(v, name, n):
    if v.shape[0] != n:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: {[n, v.shape[0]]}"
            if name == "y" else
            f"{name} has {v.shape[0]} elements, expected {n} (one per sample).")


def _vector(v, name, X):
    """A 1-D Dask array with the row chunks of X, from a Dask or in-memory vector."""
    import dask.array as da

    n = X.shape[0]
    if hasattr(v, "to_dask_array"):  # a Dask Series: its values, without computing them
        v = v.to_dask_array(lengths=True)
    lazy = isinstance(v, da.Array)
    if not lazy:
        v = np.asarray(v)
        if v.ndim == 0 and name == "sample_weight":
            v = np.full(n, v)
    if v.ndim == 2 and v.shape[1] == 1:
        warnings.warn(
            f"A column-vector {name} was passed when a 1d array was expected. Please "
            "change the shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning, stacklevel=4)
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {v.shape}.")
    if not lazy:
        _check_length(v, name, n)
        return da.from_array(v, chunks=(X.chunks[0],))
    if any(math.isnan(c) for c in v.chunks[0]):
        raise ValueError(f"{name} has chunks of unknown size: call {name}.compute_chunk_sizes().")
    _check_length(v, name, n)
    return v if v.chunks[0] == X.chunks[0] else v.rechunk((X.chunks[0],))


def _validated(x, y, dtype, check_finite=True):
    """A chunk of X and y checked and converted as ``fit`` does it in memory."""
    with np.errstate(over="ignore", invalid="ignore"):  # as in SoftmaxRegressor.fit
        x, y = check_X_y(
            x, y, accept_sparse="csr", dtype=dtype, order="C", estimator=_NAME,
            ensure_min_samples=0, ensure_all_finite=check_finite,
        )
    return canonical(x), y


def _chunk_targets(x, y, sw, dtype):
    """Pass 1 on a chunk: validate it; its label values, their weighted counts, and its
    largest sample weight (0 without weights)."""
    x, y = _validated(x, y, dtype)
    values, inverse = np.unique(y, return_inverse=True)
    weights = None
    largest = 0.0
    if sw is not None:
        weights = check_sample_weight(sw, y.shape[0], np.float64, require_positive_sum=False)
        largest = float(weights.max(initial=0.0))
    counts = np.bincount(inverse.ravel(), weights=weights, minlength=values.shape[0])
    return values, counts.astype(np.float64), largest


def _chunk(x, y, sw, classes, weight_exponent, class_weight, dtype):
    """Pass 2 on a chunk: the ``Chunk`` object a fit keeps on the worker."""
    x, y = _validated(x, y, dtype, check_finite=False)  # pass 1 checked
    labels = labels_of(y, classes)
    weights = np.empty(0)
    if sw is not None:
        weights = np.ldexp(check_sample_weight(sw, y.shape[0], np.float64,
                                               require_positive_sum=False), -weight_exponent)
    if class_weight is not None:
        weights = (weights if weights.size else 1.0) * class_weight[labels]
    return Chunk(x, labels, weights.astype(dtype))


def _group(xs, ys, ws, classes, weight_exponent, class_weight, dtype):
    """Pass 2 on a group of consecutive chunks: the list of ``Chunk`` objects a fit keeps
    on one worker."""
    return [_chunk(x, y, w, classes, weight_exponent, class_weight, dtype)
            for x, y, w in zip(xs, ys, ws)]


def _group_moments(group, per_task, n_jobs):
    return [_chunk_moments(chunk, per_task, n_jobs) for chunk in group]


def _restricted_group(group, exponents, stored):
    return [_restricted(chunk, exponents, stored) for chunk in group]


def _chunk_moments(chunk, per_task, n_jobs):
    """The chunk's weight sum, its column moments and its stored entries."""
    X, sw = chunk.X, chunk.sample_weight
    weight_sum = float(sw.sum(dtype=np.float64)) if sw.size else float(chunk.n_rows)
    nnz = X.nnz if sp.issparse(X) else 0
    if weight_sum == 0:
        return 0.0, None, None, None, nnz
    threads = chunk_threads(X.shape[0] * X.shape[1], per_task, n_jobs)
    mean, std, magnitude = column_moments(X, sw, threads)
    return weight_sum, mean, std, magnitude, nnz


def _restricted(chunk, exponents, stored):
    """The chunk with its extreme columns scaled, and only the stored columns fitted."""
    return Chunk(scale_columns(chunk.X, exponents), chunk.labels, chunk.sample_weight, stored)


def _client():
    """The current ``distributed.Client``, or None (the local scheduler)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client
        return None


def _persist(groups, client):
    """Persist the groups; with a ``distributed`` client, group i on the i-th slot of a
    round robin over the workers' threads (in address order), so that each thread holds
    one group (other workers may take a group over where its worker is lost)."""
    if client is None:
        return list(dask.persist(*groups))
    slots = [address for address, n in sorted(client.nthreads().items()) for _ in range(n)]
    return [client.persist(group, workers=[slots[i % len(slots)]], allow_other_workers=True)
            for i, group in enumerate(groups)]


def prepare_dask_fit(estimator, X, y, sample_weight):
    """The ``FitData`` of a Dask array X (chunked by rows) and its labels and weights.

    Parameters
    ----------
    estimator : SoftmaxRegressor
        Its ``C``, ``class_weight`` and ``n_jobs`` are read; its ``n_features_in_`` is
        set.
    X : dask.array.Array of shape (n_samples, n_features)
        Chunks of NumPy arrays or SciPy sparse matrices (used as CSR), one chunk along
        the columns.
    y : dask.array.Array or array-like of shape (n_samples,)
        Rechunked like X's rows where it is chunked otherwise.
    sample_weight : dask.array.Array, array-like of shape (n_samples,), scalar or None

    Raises
    ------
    ValueError, TypeError
        As ``fit`` in memory (raised from the chunk where the problem lies), and where X
        is not 2-D, is chunked along its columns, or has chunks of unknown size.
    """
    check_dask_X(X)
    dtype = _fit_dtype(X)
    validate_data(estimator, X, reset=True, skip_check_array=True)
    y = _vector(y, "y", X)
    sw = None if sample_weight is None else _vector(sample_weight, "sample_weight", X)
    x_blocks = X.to_delayed().ravel()
    y_blocks = y.to_delayed().ravel()
    w_blocks = sw.to_delayed().ravel() if sw is not None else [None] * len(x_blocks)
    n_chunks = len(x_blocks)

    # Pass 1: validation, classes, their weighted counts, the largest weight.
    targets = dask.compute(*[
        dask.delayed(_chunk_targets, pure=False)(xb, yb, wb, dtype)
        for xb, yb, wb in zip(x_blocks, y_blocks, w_blocks)
    ])
    classes = check_targets(np.concatenate([values for values, _, _ in targets]))
    check_two_classes(classes)
    counts = np.zeros(classes.shape[0])
    for values, value_counts, _ in targets:
        np.add.at(counts, np.searchsorted(classes, values), value_counts)
    C = float(estimator.C)
    weight_exponent = 0
    if sw is not None:
        largest = max(largest for _, _, largest in targets)
        if not largest > 0:
            raise ValueError("sample_weight is zero for every sample: there is nothing to fit.")
        weight_exponent = int(np.frexp(largest)[1])
        _, C = normalize_weights(np.array([largest]), C)
        counts = np.ldexp(counts, -weight_exponent)
    class_weight = None
    if estimator.class_weight is not None:
        class_weight, C = normalize_weights(
            class_weights(estimator.class_weight, classes, counts), C)
    if sw is not None or class_weight is not None:
        positive = counts > 0 if class_weight is None else (counts > 0) & (class_weight > 0)
        check_positive_classes(positive)

    # Pass 2: the chunks kept on the workers, in groups of consecutive chunks (about one
    # group per thread of the cluster), and their moments.
    client = _client()
    cluster = sum(client.nthreads().values()) if client is not None else 0
    cluster = cluster or n_threads_from_n_jobs(None)
    n_groups = min(n_chunks, cluster)
    bounds = np.linspace(0, n_chunks, n_groups + 1).round().astype(int)
    spans = [slice(bounds[g], bounds[g + 1]) for g in range(n_groups)]
    groups = _persist([
        dask.delayed(_group, pure=False)(
            list(x_blocks[span]), list(y_blocks[span]), list(w_blocks[span]), classes,
            weight_exponent, class_weight, dtype)
        for span in spans
    ], client)
    per_task = max(1, cluster // n_groups)
    n_jobs = estimator.n_jobs
    moments = [part for parts in dask.compute(*[
        dask.delayed(_group_moments, pure=False)(group, per_task, n_jobs) for group in groups
    ]) for part in parts]
    parts = [part[:4] for part in moments if part[0] > 0]
    weight_sum = sum(part[0] for part in parts)
    mean, std, magnitude = merge_column_moments(parts)
    n_samples, n_features = X.shape
    sparse = sp.issparse(X._meta)
    exponents = extreme_exponents(magnitude, n_samples, dtype)
    if exponents is not None:
        mean, std = np.ldexp(mean, -exponents), np.ldexp(std, -exponents)
    stored = stored_columns(sparse, magnitude)
    if exponents is not None or stored is not None:
        groups = _persist([
            dask.delayed(_restricted_group, pure=False)(group, exponents, stored)
            for group in groups
        ], client)
        if stored is not None:
            mean, std = mean[stored], std[stored]
            if exponents is not None:
                exponents = exponents[stored]
    n_fitted = n_features if stored is None else len(stored)
    nnz = sum(part[4] for part in moments)
    work = nnz + n_samples if sparse else n_samples * (n_fitted + 1)
    rows = DaskRows(groups, X, dtype, (n_samples, n_fitted), work, per_task, n_jobs)
    description = (
        f"Dask array {n_samples} x {n_features} {np.dtype(dtype).name} in {n_chunks} "
        f"chunks{f' (sparse, {nnz} entries)' if sparse else ''}, in {n_groups} groups"
        f"{f' ({n_fitted} columns with entries fitted)' if stored is not None else ''}"
        f", {per_task} thread(s) per chunk task"
    )
    return FitData(
        rows=rows, labels=None, sample_weight=None, weight_sum=weight_sum, classes=classes,
        C=C, mean=mean, std=std, magnitude=magnitude, column_exponents=exponents,
        stored=stored, n_features=n_features, dtype=np.dtype(dtype), description=description,
    )


def blocks_of(X, y, sample_weight):
    """The chunks of a Dask array X, with those of y and the weights alike, computed one
    at a time, in order: ``(x, y, sample_weight or None)`` (for ``partial_fit``)."""
    check_dask_X(X)
    y = _vector(y, "y", X)
    sw = None if sample_weight is None else _vector(sample_weight, "sample_weight", X)
    for i in range(X.numblocks[0]):
        if X.chunks[0][i] == 0:
            continue  # an empty chunk has nothing to add
        yield dask.compute(X.blocks[i, 0], y.blocks[i],
                           None if sw is None else sw.blocks[i])


def _predict_block(x, model, method, shape, dtype):
    """``model.<method>(x)``, or an empty array of the result's shape for an empty chunk."""
    if x.shape[0] == 0:
        return np.empty((0, *shape), dtype=dtype)
    return getattr(model, method)(x)


def map_prediction(estimator, X, method):
    """``estimator.<method>`` of each chunk of a Dask array X, as a lazy Dask array.

    The fitted model is copied now (and sent with the graph), so a later fit does not
    change the result. X may be chunked along its columns here (they are joined).
    """
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got a Dask array of shape {X.shape}.")
    validate_data(estimator, X, reset=False, skip_check_array=True)
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    model = copy.deepcopy(estimator)
    classes = model.classes_
    k = len(classes)
    x_dtype = _fit_dtype(X)
    if method == "predict":
        dtype, chunks = classes.dtype, (X.chunks[0],)
    elif method == "decision_function":
        dtype = x_dtype
        chunks = (X.chunks[0],) if k == 2 else (X.chunks[0], (k,))
    else:
        dtype, chunks = model.coef_.dtype, (X.chunks[0], (k,))
    drop_axis = [1] if len(chunks) == 1 else []
    return X.map_blocks(
        _predict_block, model, method, tuple(c[0] for c in chunks[1:]), dtype, dtype=dtype,
        chunks=chunks, drop_axis=drop_axis, meta=np.empty((0,) * len(chunks), dtype=dtype),
    )
