"""Streaming fits (``SoftmaxRegressor.partial_fit``): the model of the other chunks.

The objective of a data set made of chunks c of weight S_c (S in all) is::

    F(w) = (1/S) [ sum_c S_c L_c(w) + R(w) / C ],   L_c = (1/S_c) sum_{i in c} s_i CE_i

(R the L2 / elastic-net penalty). A call of ``partial_fit`` has chunk c's rows only. It
minimizes ``(S / S_c) F`` with the chunk's data term exact and every other chunk's
replaced by a quadratic model kept from when that chunk was last seen, at the model
``w_c'`` then::

    L_c(w) + R(w) / (C S_c)
      + (1/S_c) sum_{c' != c} S_c' [ g_c' . (w - w_c') + (h_c'/2) ||theta - theta_c'||^2 ]

with ``g_c' = grad L_c'(w_c')`` and ``h_c'`` the mean curvature of chunk c' there (its
Hessian's trace over the parameters, by Hutchinson's estimator), in the fits'
standardized coordinates ``theta`` (``_preconditioning``). The models' sum needs only
``sum S_c' g_c'``, ``sum S_c' h_c' w_c'`` and ``sum S_c' h_c'``: a linear term and one
proximal term ``(mu/2) ||theta - theta_bar||^2``, ``mu = sum_c' S_c' h_c' / S_c``.
The call then keeps the chunk's ``w_c``, ``g_c`` and ``h_c`` in place of its old ones.

This is the incremental majorization-minimization method MISO (Mairal, "Incremental
majorization-minimization optimization with application to large-scale machine
learning", SIAM J. Optim. 25, 2015), with the chunk's own term kept exact, as in
Finito (Defazio, Caetano & Domke, ICML 2014), and each model's curvature its chunk's
mean one rather than an upper bound (the loss's curvature at W = 0, about its largest,
left the model 10 to 20 times farther from the optimum after 10 passes, on P1 and on
the raw problem of ``tests/test_partial_fit.py``). At a fixed point every stored
gradient is taken at the same model, the models' gradients add up to F's, and the
minimizer is F's optimum: passes over the chunks converge to ``fit``'s model on their
union, with its penalty, and a pass over chunks of similar rows gets close in one pass.
A first chunk that lacks a class has no finite optimum (that class's intercept tends
to -inf): its call also models the data still to come as one more chunk's worth at the
null model, where MISO starts every unseen chunk's model. Each call solves its problem to ``tol`` with the fit's own solvers, started
from the previous model: a call costs about a warm ``fit`` of the chunk, and one more
pass over it for ``g_c`` and a Hessian product for ``h_c``.

Why this method: it needs no rows but the chunk's, converges over passes (unlike an
average of per-chunk fits), takes the second-order steps that make ``fit`` fast (a
stochastic-gradient step per row, as in ``SGDClassifier.partial_fit``, needs a
learning-rate schedule and many passes), and holds on chunks that are not alike
(chunks of a single class, data sorted by label), where a plain proximal step towards
the last model is pulled to the last chunks.

Memory: two vectors of the model's size per distinct chunk (a chunk is recognized by a
BLAKE2 digest of its rows, labels and weights), up to ``MEMORY_BYTES``; beyond, the
least recently seen chunks are forgotten, and their weight is modelled by a proximal
term towards the previous model instead. The penalty is scaled for the samples seen:
the weight of the distinct chunks so far.
"""

import hashlib
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp

from ._preconditioning import merge_column_moments

#: The memory of the chunks' models (two float64 vectors of the parameters each).
MEMORY_BYTES = 2**30


class ProximalObjective:
    """A smooth objective in the solvers' coordinates plus a linear term and a proximal term:
    ``f(theta) + linear . theta + (mu / 2) ||theta - centre||^2``.

    Parameters
    ----------
    smooth : _preconditioning.StandardizedObjective
    centre : ndarray of shape (n_params,), float64
        The proximal term's centre, in the same coordinates (centred as the solvers'
        points are).
    strength : float
        ``mu``, non-negative, in the objective's units per unit of theta squared.
    linear : ndarray of shape (n_params,), float64
        The linear term's coefficients (centred likewise).
    """

    def __init__(self, smooth, centre, strength, linear):
        self.smooth = smooth
        self.objective = smooth.objective
        self.centre_point = centre
        self.strength = float(strength)
        self.linear = linear
        self.n_params = smooth.n_params
        self.value_resolution = smooth.value_resolution
        self._smooth_value = 0.0

    def _map_threads(self):
        return self.smooth._map_threads()

    def loop_threads(self, n):
        return self.smooth.loop_threads(n)

    def centre(self, v):
        return self.smooth.centre(v)

    def optimality(self, value, grad):
        """The smooth objective's measure (``max |grad| / value``) of this one's gradient,
        relative to the larger of this one's value and the chunk's own (the linear term
        can take the value near or below 0, where the ratio would mean nothing)."""
        if not np.isfinite(value):
            return np.inf
        return self.smooth.optimality(max(abs(value), self._smooth_value), grad)

    def loss_gradient(self, theta):
        """Value and gradient of the smooth objective plus the linear and proximal terms."""
        value, grad = self.smooth.loss_gradient(theta)
        if not np.isfinite(value):
            return value, grad
        self._smooth_value = value
        step = theta - self.centre_point
        value += float(self.linear @ theta) + 0.5 * self.strength * float(step @ step)
        grad += self.linear + self.strength * self.smooth.centre(step)
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


def _exponent_per_param(objective, column_exponents):
    """Per flat parameter, the power of two its column was scaled down by (0: intercepts)."""
    exponents = np.zeros(objective.n_params, dtype=int)
    if column_exponents is not None:
        exponents[: objective.n_coef] = np.repeat(column_exponents, objective.n_columns)
    return exponents


class StreamState:
    """What ``partial_fit`` keeps between calls, besides the model.

    Attributes
    ----------
    data_weight : float
        The weight of the distinct chunks seen: S.
    moments : tuple of ndarrays or None
        The column moments (mean, std, magnitude) of the distinct chunks so far.
    """

    def __init__(self, memory_bytes=MEMORY_BYTES):
        self.data_weight = 0.0
        self.moments = None
        self.memory_bytes = memory_bytes
        self._seen = set()
        # digest -> (weight, h, w, g): the chunk's curvature, and its model point and
        # data gradient in the model's own (unscaled) coordinates, float64; least
        # recently seen first.
        self._memory = OrderedDict()
        self._sum_weight = 0.0
        self._sum_hw = None
        self._sum_g = None
        self._current = None

    def begin(self, digest, weight, moments):
        """Start a call on a chunk of ``weight`` (in the caller's units) with its column
        moments; returns whether the chunk is new."""
        self._current = (digest, weight)
        if digest in self._seen:
            return False
        self._seen.add(digest)
        if self.moments is None:
            self.moments = moments
        else:
            self.moments = merge_column_moments(
                [(self.data_weight, *self.moments), (weight, *moments)])
        self.data_weight += weight
        return True

    def problem(self, standardized, column_exponents, previous, all_classes=True):
        """The call's problem in the solvers' coordinates: ``standardized`` (the chunk's
        data term and the penalty, scaled by ``1/S_c``) plus the other chunks' models.

        ``previous``: the previous model in the solvers' coordinates (None on the first
        call), towards which the weight of forgotten chunks pulls; ``all_classes``:
        whether every class has a sample of positive weight in the chunk.
        """
        digest, weight = self._current
        objective = standardized.objective
        if self._sum_hw is None or self._sum_hw.shape[0] != objective.n_params:
            self._clear(objective.n_params)
        others, sum_h, sum_hw, sum_g = (self._sum_weight, self._sum_h, self._sum_hw,
                                        self._sum_g)
        if digest in self._memory:
            own, own_h, own_w, own_g = self._memory[digest]
            others, sum_h = others - own, sum_h - own * own_h
            sum_hw, sum_g = sum_hw - own * own_h * own_w, sum_g - own * own_g
        if others <= 1e-12 * self.data_weight:
            others = 0.0
        forgotten = max(self.data_weight - weight - others, 0.0)
        if forgotten <= 1e-12 * self.data_weight or previous is None:
            forgotten = 0.0
        # On a first call whose chunk lacks a class (which has then no finite optimum: its
        # intercept tends to -inf), the data still to come are modelled as one more
        # chunk's worth at the null model (theta = 0), as MISO starts every unseen
        # chunk's model at the starting point. From the second call on, the first
        # chunk's model bounds the problem.
        unseen = weight if not (others or forgotten) and not all_classes else 0.0
        if not (others or forgotten or unseen):
            return standardized
        scale = np.ldexp(1.0, _exponent_per_param(objective, column_exponents))
        # The curvature of the models of forgotten or unseen chunks: the remembered ones'
        # mean, or the loss's at W = 0 before any.
        h = (self._sum_h / self._sum_weight if self._sum_weight > 0
             else objective.curvature_at_zero)
        linear = np.zeros(objective.n_params)
        centre = np.zeros(objective.n_params)
        strength = 0.0
        if others:
            linear = standardized.centre(standardized.solver_gradient(sum_g / scale / weight))
            centre = standardized.centre(standardized.to_solver(sum_hw * scale / sum_h))
            strength = sum_h / weight
        for mass, towards in ((forgotten, previous), (unseen, previous)):
            if mass:
                towards = np.zeros_like(centre) if towards is None else towards
                pull = h * mass / weight
                centre = (strength * centre + pull * towards) / (strength + pull)
                strength += pull
        return ProximalObjective(standardized, centre, strength, linear)

    def record(self, standardized, theta, w, column_exponents):
        """Keep the chunk's solution (``theta`` in the solvers' coordinates, ``w`` in the
        objective's), its data gradient there and its curvature, in place of the chunk's
        old ones.

        The curvature ``h_c`` is the Rayleigh quotient ``v.Hv / v.v`` of the chunk's
        Hessian at its solution, in the solvers' coordinates, along a fixed random
        Gaussian vector over the coefficients that move: the estimate of the mean
        eigenvalue, trace(H) / p, of Hutchinson (Commun. Stat. Simul. Comput. 18, 1989),
        with a Gaussian vector, which the projection onto the centred directions never
        takes to 0.
        """
        digest, weight = self._current
        objective = standardized.objective
        scale = np.ldexp(1.0, _exponent_per_param(objective, column_exponents))
        g = objective.data_gradient(w) * scale
        w = w / scale
        moving = np.ones(objective.n_params, dtype=bool)
        moving[: objective.n_coef] = np.repeat(standardized.varying, objective.n_columns)
        v = standardized.centre(
            np.where(moving, np.random.default_rng(0).standard_normal(objective.n_params), 0.0))
        norm = float(v @ v)
        h = (float(v @ standardized.hessian_product(theta, v)) / norm if norm > 0
             else objective.curvature_at_zero)
        if not (np.isfinite(g).all() and np.isfinite(w).all() and np.isfinite(h) and h > 0):
            return
        if self._sum_hw is None or self._sum_hw.shape[0] != w.shape[0]:
            self._clear(w.shape[0])
        self._forget(digest)
        self._memory[digest] = (weight, h, w, g)
        self._sum_weight += weight
        self._sum_h += weight * h
        self._sum_hw += weight * h * w
        self._sum_g += weight * g
        while len(self._memory) > 1 and 2 * w.nbytes * len(self._memory) > self.memory_bytes:
            self._forget(next(iter(self._memory)))

    def _forget(self, digest):
        if digest in self._memory:
            weight, h, w, g = self._memory.pop(digest)
            self._sum_weight -= weight
            self._sum_h -= weight * h
            self._sum_hw -= weight * h * w
            self._sum_g -= weight * g

    def _clear(self, n_params):
        self._memory.clear()
        self._sum_weight = self._sum_h = 0.0
        self._sum_hw = np.zeros(n_params)
        self._sum_g = np.zeros(n_params)
