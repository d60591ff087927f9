"""The L1 term of the elastic-net penalty, a room of its own (skglm's datafit / penalty /
solver split): its value, its proximal operator and the minimum-norm subgradient of a
smooth objective plus it.

The smooth part (data term and L2 term) is ``_objective.LinearSoftmaxObjective`` seen
in the standardized coordinates ``theta`` of ``_preconditioning``. There the L1 term
``r / (C S) sum_jc |W_jc|`` of the model's coefficients ``W_jc = D_j theta_jc`` is a
weighted L1 norm, ``sum_jc (r D_j / (C S)) |theta_jc|``: separable, so its proximal
operator is a soft threshold per entry, and the intercepts (unpenalized) have weight 0.
"""

import math

import numpy as np

from . import _penalty_loops

# Weights are capped here: a coefficient under a weight this large relative to any
# gradient stays 0, and a finite cap keeps ``weight * |theta|`` free of inf * 0.
_LARGEST_WEIGHT = 2.0**500


class L1Penalty:
    """``sum_i weight_i |theta_i|`` over a flat parameter vector, float64.

    Parameters
    ----------
    weights : ndarray of shape (n_params,), float64
        Non-negative, finite weights (0 for unpenalized parameters, as intercepts).
    """

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=np.float64)

    def value(self, theta):
        """The penalty at ``theta``, a float."""
        return float(np.dot(self.weights, np.abs(theta)))

    def prox(self, theta, step):
        """``argmin_u ||u - theta||^2 / (2 step) + penalty(u)``: the soft threshold of each
        entry by ``step * weight``, with exact zeros."""
        return np.sign(theta) * np.maximum(np.abs(theta) - step * self.weights, 0.0)

    def subgradient(self, theta, grad, n_threads=1):
        """The minimum-norm element of ``grad + d penalty(theta)``, the subdifferential of
        (smooth + penalty) at ``theta`` given the smooth part's gradient ``grad``, a new
        float64 array (``_penalty_loops.subgradient``, on ``n_threads`` threads).

        ``grad_i + w_i sign(theta_i)`` where ``theta_i != 0``; where ``theta_i = 0``, the
        soft threshold of ``grad_i`` by ``w_i`` (0 when ``|grad_i| <= w_i``). It is 0 at,
        and only at, a minimizer (Andrew & Gao 2007 call it the pseudo-gradient); its
        largest entry is the stopping measure of the proximal solvers, with the meaning
        of the smooth solvers' largest gradient entry.
        """
        out = np.empty_like(grad)
        _penalty_loops.subgradient(theta, grad, self.weights, out, n_threads)
        return out


class CompositeObjective:
    """A smooth objective plus an L1 penalty, both in the solvers' coordinates.

    Parameters
    ----------
    smooth : _preconditioning.StandardizedObjective
        The data term and the L2 term, built with ``centred=False`` (the L1 term is not
        invariant to a shift common to the classes).
    penalty : L1Penalty
    """

    def __init__(self, smooth, penalty):
        self.smooth = smooth
        self.penalty = penalty
        self.n_params = smooth.n_params
        self.value_resolution = smooth.value_resolution

    def loss_gradient(self, theta):
        """The smooth part's value and gradient at ``theta`` (``(inf, zeros)`` where not
        finite)."""
        return self.smooth.loss_gradient(theta)

    def value(self, theta, smooth_value):
        """The whole objective at ``theta``, from its smooth part's value there."""
        return smooth_value + self.penalty.value(theta) if math.isfinite(smooth_value) else math.inf

    def _threads(self):
        """Threads for the loops over the parameters (the kernels' rule: 1 for small
        models)."""
        return self.smooth._map_threads()

    def subgradient(self, theta, grad):
        """See :meth:`L1Penalty.subgradient`."""
        return self.penalty.subgradient(theta, grad, self._threads())

    def constrain_direction(self, direction, theta, subgradient):
        """OWL-QN's constraint on a direction, in place (``_penalty_loops``); returns the
        slope ``subgradient . direction``."""
        return _penalty_loops.constrain_direction(
            direction, theta, subgradient, self.penalty.weights, self._threads())

    def projected_step(self, theta, direction, step, subgradient):
        """``theta + step direction`` projected onto OWL-QN's orthant, with the
        first-order change ``subgradient . (new - theta)`` and the L1 term at the new
        point (``_penalty_loops.projected_step``)."""
        out = np.empty_like(theta)
        change, l1 = _penalty_loops.projected_step(
            theta, direction, step, subgradient, self.penalty.weights, out, self._threads())
        return out, change, l1

    def end_slope(self, w_new, change, grad_new):
        """The slope of the objective at ``w_new`` along ``change`` as it arrives there
        from ``w_new - change``: ``-F'(w_new; -change)``, the one-sided derivative, with
        ``grad_new`` the smooth part's gradient at ``w_new`` (for the line search's
        test below the rounding of F)."""
        weights = self.penalty.weights
        return float(grad_new @ change + weights @ (np.sign(w_new) * change)
                     - weights @ np.where(w_new == 0, np.abs(change), 0.0))

    def optimality(self, value, subgradient):
        """The stopping measure: the minimum-norm subgradient's largest entry relative to
        the objective, in the model's coordinates and in theta (as
        ``StandardizedObjective.optimality`` measures a gradient)."""
        return self.smooth.optimality(value, subgradient)

    def loop_threads(self, n):
        return self.smooth.loop_threads(n)


def l1_penalty(standardized):
    """The L1 term of ``standardized.objective`` (``l1_strength``, per unit of |W|) as an
    :class:`L1Penalty` on the flat theta of ``standardized``: weight ``l1_strength_j D_j``
    for each class's coefficient of feature j, 0 for the intercepts and for features that
    do not vary (their coefficients stay 0)."""
    objective = standardized.objective
    scale = standardized.scale
    strength = np.broadcast_to(np.asarray(objective.l1_strength, dtype=np.float64), scale.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        per_feature = np.where(scale > 0, np.minimum(strength * scale, _LARGEST_WEIGHT), 0.0)
    weights = np.zeros(objective.n_params)
    weights[: objective.n_coef] = np.repeat(per_feature, objective.n_columns)
    return L1Penalty(weights)
