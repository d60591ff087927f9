"""The rows of X as the chunks of a Dask array, where they live: the data term's sums.

``DaskRows`` is the third storage beside ``_rows.DenseRows`` and ``_rows.CsrRows``,
with the same methods, so ``LinearSoftmaxObjective`` and every solver run unchanged on
the client. Each chunk of rows is held on a worker as a :class:`Chunk` (its in-memory
storage, its labels and its weights), in groups of consecutive chunks, about one group
per thread of the cluster (persisted once, by ``_dask_data``). An evaluation sends the
coefficients (d x k numbers) to the workers once, runs one task per group where the
group lives (the Cython kernel of each of its chunks, summed in order), and sums the
groups' results by a tree (fan-in ``TREE_FAN_IN``); only the coefficients and the
summed gradients travel, never rows. The scheduler's work per evaluation grows with the
groups, not the chunks. This is Spark MLlib's ``RDDLossFunction`` with its per-block
aggregators, on Dask.

The sums are in float64 and in a fixed order (the chunks' order within a group, the
same tree over the groups), and each chunk's kernel runs on a thread count that
depends only on the chunking and the cluster's threads, so a fit is deterministic for
a fixed chunking and cluster size; it differs from the in-memory fit of the same data
only in the order of the sums. Where Dask loses a
worker, it recomputes the lost chunks from their graph, and the tasks in flight run
again: the same values, the same sums.
"""

import uuid

import dask
import numpy as np
import scipy.sparse as sp
from dask.sizeof import sizeof

from ._rows import CsrRows, rows_of
from ._threads import MIN_WORK_PER_THREAD, n_threads_from_n_jobs

#: How many chunks' results each node of the reduction tree sums.
TREE_FAN_IN = 8


class Chunk:
    """One block of rows on a worker: its storage, labels and weights.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_rows, n_features)
        C-contiguous float32 or float64 (CSR: canonical), as the kernels take it.
    labels : ndarray of shape (n_rows,), intp
        Class indices.
    sample_weight : ndarray of shape (n_rows,) or (0,), dtype of X
        The final weights (sample times class weight, scaled); empty for unit weights.
    columns : ndarray of intp, default=None
        For CSR X, the columns fitted (``_rows.CsrRows``); None for all.
    """

    def __init__(self, X, labels, sample_weight, columns=None):
        self.rows = CsrRows(X, columns) if columns is not None else rows_of(X)
        self.labels = labels
        self.sample_weight = sample_weight
        self.n_rows = labels.shape[0]

    @property
    def X(self):
        return self.rows.X

    @property
    def nbytes(self):
        X = self.rows.X
        stored = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes if sp.issparse(X) else X.nbytes
        return stored + self.labels.nbytes + self.sample_weight.nbytes


@sizeof.register(Chunk)
def _sizeof_chunk(chunk):
    """The chunk's bytes, for Dask's scheduler: without this it sees a small Python
    object, and moves chunks of hundreds of megabytes between workers to balance tasks."""
    return chunk.nbytes


def worker_threads():
    """The number of threads of the Dask worker running the calling task, or None where
    it does not run on a ``distributed`` worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker().state.nthreads
    except ValueError:  # not in a worker
        return None


def chunk_threads(work, per_task, n_jobs):
    """OpenMP threads for a chunk's kernel call of ``work`` multiply-adds.

    ``n_jobs`` given: that many (as in memory, on the worker's CPUs). Otherwise
    ``per_task``, the cluster's threads shared among the chunks (the client's rule,
    the same for every chunk), and no more than the worker's own threads: Dask's nanny
    sets ``OMP_NUM_THREADS=1``, which is why the count is passed explicitly. Never more
    than the work pays for (``_threads.MIN_WORK_PER_THREAD``).
    """
    if n_jobs is not None:
        limit = n_threads_from_n_jobs(n_jobs)
    else:
        limit = per_task
        own = worker_threads()
        if own:
            limit = min(limit, own)
    return max(1, min(limit, int(work) // MIN_WORK_PER_THREAD))


def _in_float64(arrays):
    return tuple(np.zeros(a.shape) for a in arrays)


def group_loss_gradient(group, n_classes, point, per_task, n_jobs):
    """The weighted cross-entropy sum of a group of chunks (a list of :class:`Chunk`, on
    one worker) and its gradient (times S), summed in float64 in the chunks' order:
    ``(loss, grad_coef_t (d, k), grad_intercept (k,))``."""
    coef_t, intercept = point
    loss = 0.0
    grad_coef_t, grad_intercept = _in_float64(point)
    out_coef_t, out_intercept = np.empty_like(coef_t), np.empty_like(intercept)
    for chunk in group:
        if chunk.n_rows == 0:
            continue
        threads = chunk_threads(chunk.rows.work_per_class * n_classes, per_task, n_jobs)
        loss += float(chunk.rows.loss_gradient(
            n_classes, chunk.labels, chunk.sample_weight, coef_t, intercept, out_coef_t,
            out_intercept, threads))
        grad_coef_t += out_coef_t
        grad_intercept += out_intercept
    return loss, grad_coef_t, grad_intercept


def group_hessian_product(group, n_classes, point, direction, per_task, n_jobs):
    """The Hessian (times S) of a group of chunks at ``point`` applied to ``direction``,
    summed in float64 in the chunks' order: ``(out_coef_t (d, k), out_intercept (k,))``."""
    coef_t, intercept = point
    total_coef_t, total_intercept = _in_float64(point)
    out_coef_t, out_intercept = np.empty_like(coef_t), np.empty_like(intercept)
    for chunk in group:
        if chunk.n_rows == 0:
            continue
        threads = chunk_threads(chunk.rows.work_per_class * n_classes, per_task, n_jobs)
        chunk.rows.hessian_product(
            n_classes, chunk.sample_weight, coef_t, intercept, *direction, out_coef_t,
            out_intercept, threads)
        total_coef_t += out_coef_t
        total_intercept += out_intercept
    return total_coef_t, total_intercept


def add(*parts):
    """The sum of tuples of numbers and arrays, entry by entry, in the order given."""
    total = list(parts[0])
    for part in parts[1:]:
        for i, value in enumerate(part):
            total[i] = total[i] + value
    return tuple(total)


def tree_sum(parts, fan_in=TREE_FAN_IN):
    """A Delayed sum of Delayed tuples (:func:`add`), by a tree of the given fan-in over
    the parts in their order: the same tree, so the same rounding, every time."""
    while len(parts) > 1:
        parts = [dask.delayed(add, pure=False)(*parts[i:i + fan_in])
                 for i in range(0, len(parts), fan_in)]
    return parts[0]


def literal(value):
    """One graph key holding ``value`` (sent to each worker once per evaluation)."""
    return dask.delayed(value, name=f"softmaxreg-{uuid.uuid4().hex}", traverse=False)


class DaskRows:
    """The rows of a Dask array, as persisted groups of :class:`Chunk` objects.

    Each group is a list of consecutive chunks held by one worker, and one task per
    group and evaluation runs their kernels: the scheduler's work per evaluation grows
    with the groups (about one per thread of the cluster), not with the chunks.

    Parameters
    ----------
    groups : list of dask.delayed.Delayed
        The persisted groups (each a list of chunks), in row order.
    X : dask.array.Array
        The array they came from (never computed here).
    dtype : numpy dtype
        float32 or float64: the chunks' dtype (X's, or float64 for other dtypes).
    shape : tuple of int
        (n_samples, n_fitted_columns).
    work_per_class : int
        Multiply-adds of a pass over all rows, per class (rows x (features + 1), or the
        stored entries plus the rows for CSR chunks).
    per_task : int
        OpenMP threads per chunk task (see :func:`chunk_threads`).
    n_jobs : int or None
        The estimator's ``n_jobs``, applied on each worker.
    """

    keeps_probabilities = False
    in_memory = False

    def __init__(self, groups, X, dtype, shape, work_per_class, per_task, n_jobs):
        self.groups = groups
        self.X = X
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.nbytes = X.nbytes
        self.work_per_class = work_per_class
        self.per_task = per_task
        self.n_jobs = n_jobs
        #: Evaluations run so far (each one round trip to the cluster).
        self.n_evaluations = 0

    def _compute(self, function, *arrays):
        """Map ``function(group, ...)`` over the groups and sum the results by a tree."""
        n_classes = arrays[0][0].shape[1]
        args = [literal(tuple(np.array(a, copy=True) for a in pair)) for pair in arrays]
        parts = [dask.delayed(function, pure=False)(group, n_classes, *args, self.per_task,
                                                    self.n_jobs)
                 for group in self.groups]
        self.n_evaluations += 1
        (total,) = dask.compute(tree_sum(parts), optimize_graph=False)
        return total

    def loss_gradient(self, n_classes, labels, sample_weight, coef_t, intercept,
                      grad_coef_t, grad_intercept, n_threads):
        """As ``_rows.DenseRows.loss_gradient``; the labels and weights are the chunks'
        (``labels`` and ``sample_weight`` are None) and each chunk's thread count is
        decided where it runs (``n_threads`` is the client's, unused)."""
        loss, grad, grad_b = self._compute(group_loss_gradient, (coef_t, intercept))
        grad_coef_t[...] = grad
        grad_intercept[...] = grad_b
        return loss

    def hessian_product(self, n_classes, sample_weight, coef_t, intercept, direction_coef_t,
                        direction_intercept, out_coef_t, out_intercept, n_threads):
        """As ``_rows.DenseRows.hessian_product``, summed over the chunks."""
        out, out_b = self._compute(
            group_hessian_product, (coef_t, intercept), (direction_coef_t, direction_intercept))
        out_coef_t[...] = out
        out_intercept[...] = out_b
