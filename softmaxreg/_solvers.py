"""Solvers: each takes an objective and a start, and returns a ``SolverResult``.

An objective has ``loss_gradient(w) -> (value, grad)`` (float64, at a flat float64
vector ``w``), ``hessian_product(w, v)`` (for newton-cg) and ``optimality(value,
grad)``. Every solver stops when ``optimality(value, grad) <= tol`` (for this
package's objectives, the largest absolute entry of the gradient in the model's own
coordinates divided by the value: ``_objective.relative_gradient``), or when the
objective stops decreasing by more than rounding, or after ``max_iter`` iterations.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

# Stop when an iteration decreases the objective by at most this much, relatively:
# what L-BFGS-B calls ftol. About what float64 sums of many terms can resolve.
_FTOL = 64 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class SolverResult:
    """What a solver found.

    Attributes
    ----------
    w : ndarray
        The last iterate.
    objective : float
        The objective value at ``w``.
    n_iter : int
        Number of iterations taken.
    converged : bool
        Whether the solver stopped because ``optimality <= tol`` or because the
        objective stopped decreasing (rather than ``max_iter`` or a failed line
        search).
    message : str
        Why the solver stopped.
    reached_max_iter : bool
        Whether it stopped because it had taken ``max_iter`` iterations.
    """

    w: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    message: str
    reached_max_iter: bool = False


class _Converged(Exception):
    """Raised from scipy's callback when the gradient criterion is met."""


class _Tracker:
    """Wraps ``loss_gradient``: remembers the last point and its value and gradient, so
    that a repeated evaluation at the same point costs nothing."""

    def __init__(self, loss_gradient):
        self.loss_gradient = loss_gradient
        self.w = None
        self.value = np.nan
        self.grad = None

    def __call__(self, w):
        if self.w is None or not np.array_equal(w, self.w):
            self.value, self.grad = self.loss_gradient(w)
            self.w = np.array(w, dtype=np.float64)
        return self.value, self.grad


def _report(name, iteration, value, optimality, extra=""):
    print(
        f"[{name}] iter {iteration:4d}  objective {value:.12e}  max|grad|/objective "
        f"{optimality:.3e}{extra}",
        flush=True,
    )


def lbfgs(objective, w0, *, tol, max_iter, verbose=0, warm_start=False):
    """Minimize with scipy's L-BFGS-B, with ``LogisticRegression``'s settings.

    Parameters
    ----------
    objective : object
        With ``loss_gradient`` and ``optimality``.
    w0 : ndarray
        Starting point (float64, 1-D).
    tol : float
        Stop when ``objective.optimality(value, grad) <= tol``.
    max_iter : int
        Largest number of iterations.
    verbose : int, default=0
        If positive, print the objective and the optimality at every iteration.
    warm_start : bool, default=False
        Whether ``w0`` is the solution of a nearby problem; L-BFGS makes no use of it.

    Returns
    -------
    result : SolverResult
    """
    tracker = _Tracker(objective.loss_gradient)
    value, grad = tracker(w0)
    optimality = objective.optimality(value, grad)
    if verbose > 0:
        _report("lbfgs", 0, value, optimality)
    if optimality <= tol:
        return SolverResult(w0.copy(), float(value), 0, True, "gradient below tol at the start")
    iteration = [0]
    last = [w0]

    def callback(wk):
        iteration[0] += 1
        last[0] = np.array(wk)
        value, grad = tracker(wk)
        optimality = objective.optimality(value, grad)
        if verbose > 0:
            _report("lbfgs", iteration[0], value, optimality)
        if optimality <= tol:
            raise _Converged

    try:
        result = minimize(
            tracker,
            w0,
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            # The gradient criterion is ours (in the callback): gtol=0 leaves it to us.
            options={"maxiter": max_iter, "maxls": 50, "gtol": 0.0, "ftol": _FTOL},
        )
    except _Converged:
        w = last[0]
        return SolverResult(w, float(tracker(w)[0]), iteration[0], True, "gradient below tol")
    return SolverResult(
        w=result.x,
        objective=float(result.fun),
        n_iter=int(result.nit),
        converged=bool(result.status == 0),
        message=str(result.message),
        reached_max_iter=bool(result.status == 1),
    )


def _conjugate_gradient(hessian_product, grad, tolerance, max_iter):
    """Approximately solve ``H p = -grad`` by conjugate gradients from ``p = 0``.

    Stops when the residual's norm is at most ``tolerance``, after ``max_iter``
    products, or at a direction of non-positive curvature (then returning the
    iterate so far, or ``-grad`` if there is none): the result is always a
    descent direction. Returns ``(p, n_products)``.
    """
    p = np.zeros_like(grad)
    residual = -grad
    direction = residual.copy()
    rr = residual @ residual
    for i in range(max_iter):
        if np.sqrt(rr) <= tolerance:
            return p, i
        hd = hessian_product(direction)
        curvature = direction @ hd
        if not curvature > 0:  # also NaN: H is only semidefinite along the class sum
            return (p if i > 0 else -grad), i + 1
        step = rr / curvature
        p += step * direction
        residual -= step * hd
        rr_next = residual @ residual
        direction *= rr_next / rr
        direction += residual
        rr = rr_next
    return p, max_iter


# Inner conjugate-gradient iterations per Newton step, at most (as scikit-learn's newton-cg).
_MAX_CG_ITER = 200
# Armijo's sufficient-decrease constant and the most step halvings of the line search.
_ARMIJO = 1e-4
_MAX_BACKTRACK = 50


def newton_cg(objective, w0, *, tol, max_iter, verbose=0, warm_start=False):
    """Minimize by truncated Newton: conjugate gradients on Hessian-vector products.

    Each iteration solves the Newton system ``H p = -g`` inexactly by conjugate
    gradients, to a residual of ``eta ||g||`` with ``eta = min(0.5, sqrt(||g||))``
    (superlinear convergence near the optimum), then takes the longest step
    ``2**-i p`` with Armijo's sufficient decrease, trying the full step first.
    From a warm start, ``eta = min(0.5, sqrt(max(||g||, ||g|| / ||g_0||)))``: the
    gradient is small from the first step, and the first systems need not be
    solved more accurately than from a cold start.

    Parameters
    ----------
    objective : object
        With ``loss_gradient``, ``hessian_product`` and ``optimality``.
    w0 : ndarray
        Starting point (float64, 1-D).
    tol : float
        Stop when ``objective.optimality(value, grad) <= tol``.
    max_iter : int
        Largest number of Newton iterations.
    verbose : int, default=0
        If positive, print the objective, the optimality and the number of
        Hessian-vector products at every iteration.
    warm_start : bool, default=False
        Whether ``w0`` is the solution of a nearby problem (another C).

    Returns
    -------
    result : SolverResult
    """
    w = np.array(w0, dtype=np.float64)
    value, grad = objective.loss_gradient(w)
    n_iter = 0
    n_products = 0
    while True:
        optimality = objective.optimality(value, grad)
        if verbose > 0:
            _report("newton-cg", n_iter, value, optimality, f"  Hessian products {n_products}")
        if optimality <= tol:
            return SolverResult(w, float(value), n_iter, True, "gradient below tol")
        if n_iter >= max_iter:
            return SolverResult(w, float(value), n_iter, False, "reached max_iter", True)
        n_iter += 1
        grad_norm = np.sqrt(grad @ grad)
        if n_iter == 1:
            first_norm = grad_norm
        relative = grad_norm / first_norm if warm_start else 0.0
        forcing = min(0.5, np.sqrt(max(grad_norm, relative)))
        step_direction, products = _conjugate_gradient(
            lambda v: objective.hessian_product(w, v), grad, forcing * grad_norm, _MAX_CG_ITER
        )
        n_products += products
        slope = grad @ step_direction
        step = 1.0
        for _ in range(_MAX_BACKTRACK):
            w_next = w + step * step_direction
            value_next, grad_next = objective.loss_gradient(w_next)
            if value_next <= value + _ARMIJO * step * slope:
                break
            step *= 0.5
        else:
            return SolverResult(
                w, float(value), n_iter, False,
                "the line search found no step that decreases the objective",
            )
        decrease = value - value_next
        w, value, grad = w_next, value_next, grad_next
        if decrease <= _FTOL * max(abs(value), 1.0):
            return SolverResult(
                w, float(value), n_iter, True, "the objective stopped decreasing (ftol)"
            )


def lbfgs_then_newton_cg(objective, w0, *, tol, max_iter, verbose=0, warm_start=False):
    """L-BFGS; where it has not converged after ``max_iter`` iterations, newton-cg from
    its last iterate, for up to ``max_iter`` more iterations.

    L-BFGS is the faster of the two on well-conditioned problems, where each of its
    iterations costs one pass over X and few are needed. Where it is slow to
    converge (nearly separable classes under a weak penalty: curvature that differs
    by orders of magnitude between directions, which no rescaling of the features
    removes), newton-cg's Hessian products take it to the optimum in a few steps.
    ``n_iter`` counts the iterations of both. ``warm_start`` is ignored.
    """
    first = lbfgs(objective, w0, tol=tol, max_iter=max_iter, verbose=verbose)
    if not first.reached_max_iter:
        return first
    second = newton_cg(objective, first.w, tol=tol, max_iter=max_iter, verbose=verbose)
    return SolverResult(
        w=second.w,
        objective=second.objective,
        n_iter=first.n_iter + second.n_iter,
        converged=second.converged,
        message=second.message,
        reached_max_iter=second.reached_max_iter,
    )
