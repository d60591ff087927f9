"""Solvers: each takes a ``loss_gradient`` callable and a start, and returns a result.

A ``loss_gradient(w)`` returns the objective value and its gradient (float64) at a
flat float64 vector ``w``. Every solver stops when the largest absolute gradient
entry is at most ``tol`` (the criterion ``LogisticRegression`` uses with lbfgs), or
after ``max_iter`` iterations.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


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
        Whether the stopping criterion was met (rather than ``max_iter`` or a
        line search that could make no more progress).
    message : str
        The solver's own account of why it stopped.
    """

    w: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    message: str


class _Recorder:
    """Wraps ``loss_gradient`` to keep its last value, for per-iteration reports."""

    def __init__(self, loss_gradient):
        self.loss_gradient = loss_gradient
        self.value = np.nan
        self.grad = None

    def __call__(self, w):
        self.value, self.grad = self.loss_gradient(w)
        return self.value, self.grad


def lbfgs(loss_gradient, w0, *, tol, max_iter, verbose=0):
    """Minimize with scipy's L-BFGS-B, with ``LogisticRegression``'s settings.

    Parameters
    ----------
    loss_gradient : callable
        ``w -> (value, grad)``.
    w0 : ndarray
        Starting point (float64, 1-D).
    tol : float
        Stop when ``max |grad| <= tol``.
    max_iter : int
        Largest number of iterations.
    verbose : int, default=0
        If positive, print the objective and the gradient's max-norm at every
        iteration.

    Returns
    -------
    result : SolverResult
    """
    recorder = _Recorder(loss_gradient)
    iteration = [0]

    def report(_):
        iteration[0] += 1
        print(
            f"[lbfgs] iter {iteration[0]:4d}  objective {recorder.value:.12e}  "
            f"max|grad| {np.max(np.abs(recorder.grad), initial=0.0):.3e}",
            flush=True,
        )

    result = minimize(
        recorder,
        w0,
        method="L-BFGS-B",
        jac=True,
        callback=report if verbose > 0 else None,
        options={
            "maxiter": max_iter,
            "maxls": 50,
            "gtol": tol,
            "ftol": 64 * np.finfo(np.float64).eps,
        },
    )
    return SolverResult(
        w=result.x,
        objective=float(result.fun),
        n_iter=int(result.nit),
        converged=bool(result.status == 0),
        message=str(result.message),
    )
