"""Streaming fits (``SoftmaxRegressor.partial_fit``): the proximal term and the state.

The algorithm is the incremental proximal method (Bertsekas, "Incremental proximal
methods for large scale convex optimization", Math. Program. 129, 2011). The objective
of a data set made of chunks c of weight S_c (S in all) is a weighted sum of the
chunks' objectives::

    F(w) = sum_c (S_c / S) f_c(w),
    f_c(w) = (1 / S_c) sum_{i in c} s_i CE_i(w) + R(w) / (C S)

(R the L2 / elastic-net penalty), so each ``f_c`` is ``LinearSoftmaxObjective`` on the
chunk alone with C replaced by ``C S / S_c``: the penalty is scaled for the samples of
the whole data set, of which the chunk is a part. Without the rows of the other chunks
at hand, the call on chunk c moves the model from the previous one ``theta_prev`` to::

    argmin_theta  f_c(theta) + (mu / 2) ||theta - theta_prev||^2,
    mu = h * (weight seen before this call) / S_c

in the standardized coordinates of the fits (``_preconditioning``), where every
coefficient's curvature is about ``h`` (``curvature_at_zero``). For a quadratic ``f_c``
of curvature h this is the running average of the chunks' own optima, weighted by
their weights: one pass over the chunks of a data set gives about the average of the
chunks' fits, which agree with the whole fit to second order in their differences.
The step ``1 / mu`` shrinks as the weight seen grows, which is the condition under
which the incremental proximal method converges to the minimizer of F over repeated
passes (Bertsekas 2011, Prop. 3.2): unlike an average of the chunks' fits, more passes
move the model on to F's optimum. Each call solves its problem exactly (to ``tol``)
with the fit's own solvers, warm-started at ``theta_prev``, so a call costs about a
warm ``fit`` of the chunk.

Why this method: it needs no memory beyond the model (chunks are never revisited, and
calls need not say which chunk they carry), it works for any chunk size with the
second-order solvers that make ``fit`` fast (a stochastic-gradient step per row, as
``SGDClassifier.partial_fit`` takes, needs a learning-rate schedule and many passes),
and its steps are stable for any ``mu`` (an implicit step never overshoots).

S, the weight of the data set, is the weight of the distinct chunks seen: a chunk seen
again (the same rows, labels and weights, recognized by a BLAKE2 digest) counts once,
so passes over the same chunks converge to ``fit``'s model on their union, with its
penalty; a stream of new rows scales the penalty for all the rows seen.
"""

import hashlib

import numpy as np
import scipy.sparse as sp

from ._preconditioning import merge_column_moments


class ProximalObjective:
    """A smooth objective in the solvers' coordinates plus ``(mu / 2) ||theta - centre||^2``.

    Parameters
    ----------
    smooth : _preconditioning.StandardizedObjective
    centre : ndarray of shape (n_params,), float64
        The previous model in the same coordinates (centred as the solvers' points are).
    strength : float
        ``mu``, positive, in the objective's units per unit of theta squared.
    """

    def __init__(self, smooth, centre, strength):
        self.smooth = smooth
        self.objective = smooth.objective
        self.centre_point = centre
        self.strength = float(strength)
        self.n_params = smooth.n_params
        self.value_resolution = smooth.value_resolution

    def _map_threads(self):
        return self.smooth._map_threads()

    def loop_threads(self, n):
        return self.smooth.loop_threads(n)

    def centre(self, v):
        return self.smooth.centre(v)

    def optimality(self, value, grad):
        return self.smooth.optimality(value, grad)

    def loss_gradient(self, theta):
        """Value and gradient of the smooth objective plus the proximal term."""
        value, grad = self.smooth.loss_gradient(theta)
        if not np.isfinite(value):
            return value, grad
        step = theta - self.centre_point
        value += 0.5 * self.strength * float(step @ step)
        grad += self.strength * self.smooth.centre(step)
        return value, grad

    def hessian_product(self, theta, direction):
        """The smooth objective's Hessian product plus ``mu`` times the direction."""
        return (self.smooth.hessian_product(theta, direction)
                + self.strength * self.smooth.centre(direction))


def fingerprint(X, labels, sample_weight):
    """A BLAKE2b digest of a chunk's rows, labels and weights: equal chunks, equal digests."""
    digest = hashlib.blake2b(digest_size=16)
    if sp.issparse(X):
        parts = (X.data, X.indices, X.indptr, np.array(X.shape))
    else:
        parts = (X, np.array(X.shape))
    for part in (*parts, labels, sample_weight):
        digest.update(np.ascontiguousarray(part).view(np.uint8).reshape(-1))
        digest.update(str(part.dtype).encode())
    return digest.digest()


class StreamState:
    """What ``partial_fit`` keeps between calls, besides the model.

    Attributes
    ----------
    weight_seen : float
        The weight of every call's chunk so far (repeats included): what sets ``mu``.
    data_weight : float
        The weight of the distinct chunks seen: S, for the penalty.
    moments : tuple of ndarrays or None
        The column moments (mean, std, magnitude) of the distinct chunks so far.
    """

    def __init__(self):
        self.weight_seen = 0.0
        self.data_weight = 0.0
        self.moments = None
        self._moment_weight = 0.0
        self._seen = set()

    def add(self, digest, weight, moments):
        """Count a chunk of ``weight`` (in the caller's units) with its column moments;
        returns whether it was new. A repeated chunk adds to ``weight_seen`` only."""
        self.weight_seen += weight
        if digest in self._seen:
            return False
        self._seen.add(digest)
        self.data_weight += weight
        if self.moments is None:
            self.moments, self._moment_weight = moments, weight
        else:
            self.moments = merge_column_moments(
                [(self._moment_weight, *self.moments), (weight, *moments)])
            self._moment_weight += weight
        return True
