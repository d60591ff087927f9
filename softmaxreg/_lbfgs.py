"""Limited-memory BFGS with a Wolfe line search, lean enough for thousands of small fits.

scipy's L-BFGS-B costs about 100 microseconds per iteration outside the objective
(its driver, its wrappers and a Fortran-style reverse-communication loop), as much as
the objective itself on a data set the size of digits. This one costs a few numpy
calls per iteration: the two-loop recursion runs in C (``_solver_loops.two_loop``) on
the m x m inner products of the stored pairs, kept up to date as pairs arrive, so
each direction reads the (m, n) arrays of pairs three times in blocks, with O(m^2)
scalar work
(benchmarks/bench_small.py, "L-BFGS drivers", times both drivers).

References: Nocedal, "Updating quasi-Newton matrices with limited storage", Math.
Comp. 1980 (the two-loop recursion); Nocedal & Wright, "Numerical Optimization",
2nd ed. 2006, algorithms 7.4-7.5 (L-BFGS) and 3.5-3.6 (the strong Wolfe line
search); Hager & Zhang, "A new conjugate gradient method with guaranteed descent
and an efficient line search", SIAM J. Optim. 2005 (the approximate Wolfe
conditions, which keep the line search working where decreases of the objective
fall below its rounding).
"""

import math

import numpy as np

from ._solver_loops import store_pair, two_loop

# The stored pairs: scipy's and LogisticRegression's default (maxcor=10).
MEMORY = 10
# Sufficient decrease and curvature constants of the strong Wolfe conditions.
_C1, _C2 = 1e-4, 0.9
# Trial steps per line search, at most (LogisticRegression's maxls).
MAX_LINE_SEARCH = 50
_EPS = float(np.finfo(np.float64).eps)


class _Pairs:
    """The last ``MEMORY`` pairs (s, y) = (step, change of gradient), with s_i . y_j."""

    def __init__(self, n, n_threads=1):
        self.n_threads = n_threads  # for the C loops over the pairs
        self.S = np.zeros((MEMORY, n))
        self.Y = np.zeros((MEMORY, n))
        self.SY = np.zeros((MEMORY, MEMORY))  # SY[i, j] = s_i . y_j (i older than j)
        self.rho = np.zeros(MEMORY)
        self.order = []  # slots, oldest first
        self._order = np.zeros(0, dtype=np.intp)
        self.gamma = 1.0  # the initial inverse Hessian's scale, s.y / y.y of the last pair
        self._work = np.empty(4 * MEMORY)

    def add(self, w_new, w, grad_new, grad):
        """Store the pair (w_new - w, grad_new - grad), unless its curvature s.y is not
        clearly positive (then the pair would break the update's positive definiteness;
        it is dropped)."""
        slot = self.order[0] if len(self.order) == MEMORY else len(self.order)
        sy, yy = store_pair(w_new, w, grad_new, grad, self.S, self.Y, slot, self.SY,
                            self.n_threads)
        if not (sy > _EPS * yy and math.isfinite(sy + yy)):
            if len(self.order) == MEMORY:  # the oldest pair was overwritten: drop it too
                self.order.pop(0)
                self._order = np.array(self.order, dtype=np.intp)
            return
        if len(self.order) == MEMORY:
            self.order.pop(0)
        self.rho[slot] = 1.0 / sy
        self.gamma = sy / yy
        self.order.append(slot)
        self._order = np.array(self.order, dtype=np.intp)

    def clear(self):
        self.order = []
        self._order = np.zeros(0, dtype=np.intp)
        self.gamma = 1.0

    def direction(self, grad):
        """``-H grad``, with H the L-BFGS inverse Hessian of the stored pairs."""
        out = np.empty_like(grad)
        two_loop(self.S, self.Y, self.SY, self.rho, self._order, self.gamma, grad, out,
                 self._work, self.n_threads)
        return out


class _LineSearch:
    """A strong Wolfe line search along ``direction`` from ``w`` (value, slope < 0).

    Trial steps are bracketed and refined by interpolation (the minimizer of the
    quadratic through the slopes at the two ends where they differ in sign, else of
    the quadratic through a value and a slope), kept within the inner 80% of the
    bracket. Sufficient decrease is Armijo's, or, where the change of the objective
    is below its rounding ``noise``, Hager and Zhang's approximate condition on the
    slope, ``slope(step) <= (1 - 2 c1) |slope(0)|``.
    """

    def __init__(self, loss_gradient, noise):
        self.loss_gradient = loss_gradient
        self.noise = noise

    def __call__(self, w, value, slope, direction, step):
        """Returns ``(step, w_new, value_new, grad_new, n_evaluations)``, or ``step``
        None where no trial met the conditions (the best trial is then returned if it
        decreased the objective, else the start)."""
        lo, value_lo, slope_lo = 0.0, value, slope
        hi, value_hi, slope_hi = math.inf, math.nan, math.nan
        best = None
        for trial in range(1, MAX_LINE_SEARCH + 1):
            w_new = w + step * direction
            value_new, grad_new = self.loss_gradient(w_new)
            slope_new = float(grad_new @ direction) if np.isfinite(value_new) else np.nan
            if np.isfinite(value_new) and (best is None or value_new < best[2]):
                best = (step, w_new, value_new, grad_new)
            decrease = np.isfinite(value_new) and (
                value_new <= value + _C1 * step * slope
                or (value_new <= value + self.noise and slope_new <= -(1 - 2 * _C1) * slope)
            )
            if not decrease or (value_new > value_lo and value_new - value_lo > self.noise):
                hi, value_hi, slope_hi = step, value_new, slope_new
            elif slope_new < _C2 * slope:
                lo, value_lo, slope_lo = step, value_new, slope_new
            elif slope_new > -_C2 * slope:
                hi, value_hi, slope_hi = step, value_new, slope_new
            else:
                return step, w_new, value_new, grad_new, trial
            if hi < math.inf and hi - lo <= _EPS * hi:
                break  # the bracket has collapsed onto a step
            step = self._next_step(lo, value_lo, slope_lo, hi, value_hi, slope_hi)
        if best is not None and best[2] < value:
            return (None, *best[1:], trial)
        return None, w, value, None, trial

    @staticmethod
    def _next_step(lo, value_lo, slope_lo, hi, value_hi, slope_hi):
        if not np.isfinite(hi):
            return 4.0 * lo  # lo > 0 here: the start satisfies no curvature condition
        width = hi - lo
        if slope_lo < 0 < slope_hi:
            # The slope's zero on the line through the two slopes (exact for a quadratic).
            step = lo - slope_lo * width / (slope_hi - slope_lo)
        elif np.isfinite(value_hi):
            # The minimizer of the quadratic through value_lo, slope_lo and value_hi.
            curvature = value_hi - value_lo - slope_lo * width
            step = lo - 0.5 * slope_lo * width * width / curvature if curvature > 0 else hi
        else:
            step = lo + 0.25 * width
        return min(max(step, lo + 0.1 * width), hi - 0.1 * width)


def minimize_lbfgs(objective, w0, *, tol, max_iter, callback=None, start=None):
    """Minimize ``objective`` from ``w0`` by L-BFGS until ``optimality <= tol``.

    Parameters
    ----------
    objective : object
        With ``loss_gradient(w) -> (value, grad)``, ``optimality(value, grad)`` and
        ``value_resolution`` (the relative rounding of its values); optionally
        ``loop_threads(n)``, the threads for the loops over the pairs of n parameters.
    w0 : ndarray of shape (n,), float64
    tol : float
    max_iter : int
        Iterations (line searches) at most.
    callback : callable, default=None
        Called as ``callback(iteration, w, value, optimality)`` after every
        iteration; a true return value stops the solver.
    start : tuple, default=None
        ``objective.loss_gradient(w0)``, where the caller has it already.

    Returns
    -------
    w, value, grad, n_iter : the last iterate, its value and gradient, iterations
    status : str
        "converged", "max_iter", "callback", or "line search" (no step along the
        last direction met the Wolfe conditions, nor decreased the objective).
    """
    w = np.array(w0, dtype=np.float64)
    value, grad = objective.loss_gradient(w) if start is None else start
    if objective.optimality(value, grad) <= tol:
        return w, value, grad, 0, "converged"
    loop_threads = getattr(objective, "loop_threads", None)
    pairs = _Pairs(w.shape[0], loop_threads(w.shape[0]) if loop_threads else 1)
    search = _LineSearch(objective.loss_gradient, 0.0)
    for iteration in range(1, max_iter + 1):
        direction = pairs.direction(grad)
        slope = float(grad @ direction)
        if not slope < 0:  # rounding in the pairs: restart from steepest descent
            pairs.clear()
            direction, slope = -grad, -float(grad @ grad)
        # The first step has length 1 at most; later, the quasi-Newton step.
        step = 1.0 if pairs.order else min(1.0, 1.0 / np.sqrt(-slope))
        search.noise = objective.value_resolution * abs(value)
        accepted, w_new, value_new, grad_new, _ = search(w, value, slope, direction, step)
        if grad_new is None:
            return w, value, grad, iteration - 1, "line search"
        pairs.add(w_new, w, grad_new, grad)
        if accepted is None:
            pairs.clear()  # a decrease without the Wolfe conditions: start the pairs anew
        w, value, grad = w_new, value_new, grad_new
        optimality = objective.optimality(value, grad)
        stop = callback is not None and callback(iteration, w, value, optimality)
        if optimality <= tol:
            return w, value, grad, iteration, "converged"
        if stop:
            return w, value, grad, iteration, "callback"
    return w, value, grad, max_iter, "max_iter"
