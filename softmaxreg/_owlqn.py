"""Orthant-wise limited-memory quasi-Newton (OWL-QN) for a smooth objective plus an L1 term.

Andrew & Gao, "Scalable training of L1-regularized log-linear models", ICML 2007 (the
method of Spark MLlib's ``LogisticRegression`` with an L1 term, through Breeze's
``OWLQN``). Each iteration:

1. the pseudo-gradient ``pg``: the minimum-norm subgradient of the whole objective
   (``_penalty.L1Penalty.subgradient``);
2. the L-BFGS direction ``-H pg`` (``_lbfgs._Pairs``: pairs of steps and changes of the
   smooth part's gradient), with every component that disagrees in sign with ``-pg``
   set to 0;
3. the orthant of the step: the sign of each parameter, or of ``-pg`` where it is 0;
4. a backtracking line search along the direction, each trial projected onto that
   orthant (entries that would change sign become exactly 0), until the whole
   objective decreases by ``1e-4 pg . (w_new - w)`` (Armijo's condition with the
   pseudo-gradient).

It needs one pass over the data per trial (one fused loss-and-gradient kernel call),
which is what makes it fast here: each evaluation is one parallel kernel pass, and it
keeps exact zeros. It stops on ``optimality(value, pg) <= tol``, the measure of the
smooth solvers with the gradient replaced by the minimum-norm subgradient.
"""

import math

import numpy as np

from ._lbfgs import MAX_LINE_SEARCH, _Pairs

# The weak Wolfe conditions' constants (sufficient decrease, curvature).
_C1, _C2 = 1e-4, 0.9
# A trial step too short for the curvature condition grows by this factor (Breeze's).
_GROW = 2.1
_EPS = float(np.finfo(np.float64).eps)
# Iterations in a row without progress (see minimize_owlqn) before it stops.
_MAX_IDLE = 200
# A rejected trial's step shrinks by a factor in this range (interpolation, safeguarded).
_SHRINK_MIN, _SHRINK_MAX = 0.1, 0.5


def _largest(v):
    return float(np.max(np.abs(v), initial=0.0))


def _line_search(objective, w, value, pg, direction, orthant, step):
    """A step along ``direction`` from ``w``, each trial projected onto ``orthant``, that
    meets the weak Wolfe conditions with the pseudo-gradient (as Breeze's ``OWLQN``):
    sufficient decrease, and a slope ``pg_new . direction`` no steeper than 0.9 times the
    start's (else the step grows by 2.1, so that a short quasi-Newton step does not
    stall the method). Sufficient decrease is Armijo's, ``F_new <= F + 1e-4 pg . (w_new -
    w)``, or, where the change of F is below its rounding, Hager and Zhang's approximate
    condition on the slopes, which rounding of the values cannot fake: the slope of F at
    ``w_new`` along the step at most ``(1 - 2e-4)`` times the start's magnitude
    (``_lbfgs`` uses the same for the smooth objectives).

    Returns ``(w_new, value_new, grad_new, pg_new)``: the last trial that met the
    conditions, or the last that met sufficient decrease; None if none did.
    """
    slope = float(pg @ direction)
    noise = objective.value_resolution * abs(value)
    lo, hi = 0.0, math.inf
    best = None
    for _ in range(MAX_LINE_SEARCH):
        w_new = w + step * direction
        w_new[w_new * orthant < 0] = 0.0  # the projection onto the orthant
        smooth_new, grad_new = objective.loss_gradient(w_new)
        value_new = objective.value(w_new, smooth_new)
        change = w_new - w
        decrease = float(pg @ change)  # < 0: the first-order change
        sufficient = value_new <= value + _C1 * decrease or (
            value_new <= value + noise
            and objective.end_slope(w_new, change, grad_new) <= (2 * _C1 - 1) * decrease
        )
        if sufficient:
            pg_new = objective.subgradient(w_new, grad_new)
            best = (w_new, value_new, grad_new, pg_new)
            if float(pg_new @ direction) >= _C2 * slope:
                return best
            lo = step
        else:
            hi = step
        if hi == math.inf:
            step *= _GROW
            continue
        if hi - lo <= _EPS * hi:
            break
        if lo == 0 and math.isfinite(value_new):
            # The minimizer of the quadratic through value, the first-order change and
            # value_new, kept within [0.1, 0.5] of the step.
            curvature = value_new - value - decrease
            shrink = -0.5 * decrease / curvature if curvature > 0 else _SHRINK_MIN
            step = hi * min(max(shrink, _SHRINK_MIN), _SHRINK_MAX)
        else:
            step = 0.5 * (lo + hi)
    return best


def minimize_owlqn(objective, w0, *, tol, max_iter, callback=None):
    """Minimize a smooth objective plus an L1 term by OWL-QN from ``w0``.

    Parameters
    ----------
    objective : _penalty.CompositeObjective
        With ``loss_gradient(w)`` (the smooth part), ``value(w, smooth_value)``,
        ``subgradient(w, grad)``, ``optimality(value, subgradient)``,
        ``value_resolution`` and ``loop_threads(n)``.
    w0 : ndarray of shape (n,), float64
    tol : float
    max_iter : int
        Iterations (line searches) at most.
    callback : callable, default=None
        Called as ``callback(iteration, w, value, optimality)`` after every iteration.

    Returns
    -------
    w, value, n_iter : the last iterate, the whole objective there, iterations
    status : str
        "converged", "max_iter", "line search" (no trial along the last direction met
        the sufficient decrease), or "stalled" (``_MAX_IDLE`` iterations in a row
        neither decreased the objective by more than its rounding nor reduced the
        optimality below its least value so far: the rounding of the arithmetic, float32
        data for instance, hides the remaining distance to tol).
    """
    w = np.array(w0, dtype=np.float64)
    smooth, grad = objective.loss_gradient(w)
    value = objective.value(w, smooth)
    pg = objective.subgradient(w, grad)
    if objective.optimality(value, pg) <= tol:
        return w, value, 0, "converged"
    pairs = _Pairs(w.shape[0], objective.loop_threads(w.shape[0]))
    penalized = objective.penalty.weights > 0
    # Progress: the least value and optimality so far, and the iterations since either
    # improved (the value by more than its rounding).
    least_value, least_optimality, idle = value, objective.optimality(value, pg), 0
    for iteration in range(1, max_iter + 1):
        direction = pairs.direction(pg)
        # At a penalized zero, move only where the direction agrees with -pg.
        direction[penalized & (w == 0) & (direction * pg >= 0)] = 0.0
        slope = float(pg @ direction)
        if not slope < 0:  # rounding in the pairs: restart from steepest descent
            pairs.clear()
            direction, slope = -pg, -float(pg @ pg)
        # The orthant of the step: the sign of each penalized parameter, or where it is
        # 0, that of -pg; 0 (no constraint) for the unpenalized ones (intercepts).
        orthant = np.sign(w)
        zero = orthant == 0
        orthant[zero] = -np.sign(pg[zero])
        orthant[~penalized] = 0.0
        step = 1.0 if pairs.order else min(1.0, 1.0 / math.sqrt(-slope))
        found = _line_search(objective, w, value, pg, direction, orthant, step)
        if found is None:
            return w, value, iteration - 1, "line search"
        w_new, value_new, grad_new, pg_new = found
        pairs.add(w_new, w, grad_new, grad)
        w, value, grad, pg = w_new, value_new, grad_new, pg_new
        optimality = objective.optimality(value, pg)
        if callback is not None:
            callback(iteration, w, value, optimality)
        if optimality <= tol:
            return w, value, iteration, "converged"
        if value < least_value - objective.value_resolution * abs(least_value) or (
                optimality < least_optimality):
            idle = 0
        else:
            idle += 1
            if idle >= _MAX_IDLE:
                return w, value, iteration, "stalled"
        least_value, least_optimality = min(least_value, value), min(least_optimality, optimality)
    return w, value, max_iter, "max_iter"
