"""Solvers: each takes an objective and a start, and returns a ``SolverResult``.

An objective has ``loss_gradient(w) -> (value, grad)`` (float64, at a flat float64
vector ``w``), ``hessian_product(w, v)`` (for newton-cg) and ``optimality(value,
grad)``. A solver converges when ``optimality(value, grad) <= tol`` (for this
package's objectives, the largest absolute entry of the gradient relative to the
value: ``_objective.relative_gradient``), and only then: when it stops for another
reason (``max_iter``, or no further decrease that rounding can resolve) it says so,
and its result is not converged. Every solver takes at most ``max_iter``
iterations, and each iteration decreases the objective (or, below the rounding of
its value, the gradient), so a larger ``max_iter`` never gives a worse result beyond
the rounding of the objective.
"""

import time
from dataclasses import dataclass

import numpy as np

from ._lbfgs import minimize_lbfgs
from ._owlqn import minimize_owlqn


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
        Whether the solver stopped because ``optimality <= tol``.
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
    #: The length of the last step taken (NaN where there was none).
    last_step: float = float("nan")


def _report(name, iteration, value, optimality, extra=""):
    print(
        f"[{name}] iter {iteration:4d}  objective {value:.12e}  max|grad|/objective "
        f"{optimality:.3e}{extra}",
        flush=True,
    )


# L-BFGS hands over to newton-cg (in ``lbfgs_then_newton_cg``) when, after at least
# _RATE_MIN_ITER iterations, the rate at which it has reduced the best optimality over
# the last _RATE_WINDOW iterations projects more than _RATE_MAX_REMAINING more
# iterations to reach tol. The rule depends on the problem and tol, not on max_iter.
_RATE_MIN_ITER = 30
_RATE_WINDOW = 10
_RATE_MAX_REMAINING = 60


def _too_slow(history, tol):
    """Whether L-BFGS, with ``history`` the best optimality after each iteration (the
    start first), is projected to need more than _RATE_MAX_REMAINING more iterations."""
    if len(history) <= _RATE_MIN_ITER:
        return False
    before, now = history[-1 - _RATE_WINDOW], history[-1]
    if not now > 0:
        return False
    rate = (np.log(before) - np.log(now)) / _RATE_WINDOW
    return rate <= 0 or np.log(now / tol) / rate > _RATE_MAX_REMAINING


def lbfgs(objective, w0, *, tol, max_iter, verbose=0, warm_start=False, hand_over=False):
    """Minimize by L-BFGS (``_lbfgs.minimize_lbfgs``), with ``LogisticRegression``'s
    memory (10 pairs) and line-search budget (50 trials).

    It converges only when the gradient criterion is met. When its line search finds
    no step that decreases the objective before that, the result is not converged and
    says why: a stall is not convergence.

    Parameters
    ----------
    objective : object
        With ``loss_gradient``, ``optimality`` and ``value_resolution``.
    w0 : ndarray
        Starting point (float64, 1-D).
    tol : float
        Stop when ``objective.optimality(value, grad) <= tol``.
    max_iter : int
        Largest number of iterations; 0 returns ``w0``.
    verbose : int, default=0
        If positive, print the objective and the optimality at every iteration.
    warm_start : bool, default=False
        Whether ``w0`` is the solution of a nearby problem; L-BFGS makes no use of it.
    hand_over : bool, default=False
        Also stop (not converged) where L-BFGS is projected to be slow (see
        ``_too_slow``), for ``lbfgs_then_newton_cg``.

    Returns
    -------
    result : SolverResult
    """
    history = []
    iterates = [None, np.asarray(w0)]  # the last two (the solver makes a new array each time)

    def callback(iteration, w, value, optimality):
        iterates[:] = [iterates[1], w]
        history.append(min(history[-1], optimality) if history else optimality)
        if verbose > 0:
            _report("lbfgs", iteration, value, optimality)
        return hand_over and _too_slow(history, tol)

    value, grad = objective.loss_gradient(w0)
    history.append(objective.optimality(value, grad))
    if verbose > 0:
        _report("lbfgs", 0, value, history[0])
    w, value, grad, n_iter, status = minimize_lbfgs(
        objective, w0, tol=tol, max_iter=max_iter, callback=callback, start=(value, grad)
    )
    messages = {
        "converged": "gradient below tol",
        "max_iter": "reached max_iter",
        "callback": f"its progress projects more than {_RATE_MAX_REMAINING} more iterations "
                    "to reach tol",
        "line search": "L-BFGS stopped making progress before the gradient met tol "
                       "(no step along its direction decreased the objective)",
    }
    return SolverResult(
        w=w, objective=float(value), n_iter=n_iter, converged=status == "converged",
        message=messages[status], reached_max_iter=status == "max_iter",
        last_step=(float(np.linalg.norm(iterates[1] - iterates[0]))
                   if iterates[0] is not None else float("nan")),
    )


def _boundary_step(p, direction, radius):
    """The ``tau >= 0`` with ``||p + tau direction|| = radius`` (``||p|| <= radius``)."""
    dd = direction @ direction
    pd = p @ direction
    pp = p @ p
    root = np.sqrt(max(pd * pd + dd * (radius * radius - pp), 0.0))
    # The two forms of the positive root, chosen to avoid cancellation.
    return (radius * radius - pp) / (root + pd) if pd > 0 else (root - pd) / dd


def _steihaug_cg(hessian_product, grad, radius, tolerance, max_iter, progress=None):
    """Approximately minimize the model ``g.p + p.H.p / 2`` within ``||p|| <= radius``.

    Conjugate gradients from ``p = 0`` (Steihaug 1983; Toint 1981): stop when the
    residual's norm is at most ``tolerance``, after ``max_iter`` products, or on the
    boundary, where CG would leave the region or meets non-positive curvature. With
    ``radius = inf`` and non-positive curvature on the first direction, the result is
    ``-grad`` (steepest descent); later, the iterate so far.

    progress : callable, default=None
        Called as ``progress(n_products, residual_norm)`` after every product.

    Returns
    -------
    p : ndarray
        The step; always a descent direction.
    model_decrease : float
        ``-(g.p + p.H.p / 2) >= 0``, the decrease the quadratic model predicts.
    n_products : int
        Hessian-vector products taken.
    """
    p = np.zeros_like(grad)
    residual = -grad  # -(g + H p)
    direction = residual.copy()
    rr = residual @ residual

    def decrease(p, residual):
        # g.p + p.H.p/2 = (g.p - p.(-g - H p)) / 2 = (g.p - p.residual) / 2.
        return -0.5 * (grad @ p - p @ residual)

    for i in range(max_iter):
        if np.sqrt(rr) <= tolerance:
            return p, decrease(p, residual), i
        hd = hessian_product(direction)
        curvature = direction @ hd
        if not curvature > 0:  # also NaN: H is only semidefinite along the class sum
            if np.isfinite(radius):
                tau = _boundary_step(p, direction, radius)
                p = p + tau * direction
                residual = residual - tau * hd
            elif i == 0:
                p, residual = -grad, np.full_like(grad, np.nan)
                return p, float(grad @ grad), i + 1
            return p, decrease(p, residual), i + 1
        step = rr / curvature
        p_next = p + step * direction
        if p_next @ p_next >= radius * radius:
            tau = _boundary_step(p, direction, radius)
            p = p + tau * direction
            residual = residual - tau * hd
            return p, decrease(p, residual), i + 1
        p = p_next
        residual -= step * hd
        rr_next = residual @ residual
        if progress is not None:
            progress(i + 1, np.sqrt(rr_next))
        direction *= rr_next / rr
        direction += residual
        rr = rr_next
    return p, decrease(p, residual), max_iter


# newton-cg after L-BFGS starts with a radius of this many times L-BFGS's last step.
_HAND_OVER_RADIUS = 4.0
# The CG residual never needs to be below this fraction of tol times the objective.
_RESIDUAL_OF_TOL = 0.1
# Inner conjugate-gradient iterations per Newton step, at most (as scikit-learn's newton-cg).
_MAX_CG_ITER = 200
# Trust-region constants of TRON (Lin & More 1999; LIBLINEAR): a step is taken when the
# actual decrease is more than ETA0 times the predicted one; the radius shrinks below
# ETA1, may grow above ETA2, by factors SIGMA1..SIGMA3.
_ETA0, _ETA1, _ETA2 = 1e-4, 0.25, 0.75
_SIGMA1, _SIGMA2, _SIGMA3 = 0.25, 0.5, 4.0
# The first radius, relative to max(1, ||w||): in the standardized coordinates a step of
# this length changes logits by far more than any optimum needs.
_FIRST_RADIUS = 1e6
# Smallest factor by which a rejected step shrinks the radius (quadratic interpolation
# along a wild step can ask for less; this keeps the radius from collapsing on noise).
_MIN_SHRINK = 1e-6


def _cg_progress(iteration, target):
    """A ``progress`` for ``_steihaug_cg`` that prints every 10 products or every second."""
    start = last = time.perf_counter()

    def progress(n_products, residual_norm):
        nonlocal last
        now = time.perf_counter()
        if n_products % 10 == 0 or now - last >= 1.0:
            last = now
            print(
                f"[newton-cg] iter {iteration:4d}    CG product {n_products:3d}  residual "
                f"{residual_norm:.3e} (to {target:.3e})  {now - start:.2f} s into the step",
                flush=True,
            )

    return progress


def newton_cg(objective, w0, *, tol, max_iter, verbose=0, warm_start=False, radius=None):
    """Minimize by trust-region Newton: Steihaug's conjugate gradients on Hessian products.

    Each iteration minimizes the quadratic model of the objective inside a ball of
    radius ``radius`` by conjugate gradients (``_steihaug_cg``), to a residual of
    ``eta ||g||`` with ``eta = min(0.5, ||g|| / F)``, the gradient relative to the
    objective as the stopping test measures it (quadratic convergence near the
    optimum, so that the last step lands well inside tol; from a warm start
    ``eta = min(0.5, max(||g|| / F, ||g|| / ||g_0||))``, so that the first systems are
    not over-solved). The step is taken
    if the objective decreases by at least ``1e-4`` of the model's prediction, and
    the radius follows the ratio of the two, as in TRON (Lin & More 1999; Lin, Weng
    & Keerthi, "Trust region Newton method for large-scale logistic regression",
    JMLR 2008; LIBLINEAR's ``tron.cpp``). The first radius is the length of the
    first Newton step, so near the optimum the steps are Newton's; a rejected step
    shrinks the radius to the minimizer of the quadratic through the objective along
    the step. This keeps a step bounded where the Newton step is not (a softmax
    saturated by a warm start far from the optimum), so the method converges from
    any start (Conn, Gould & Toint, "Trust-Region Methods", 2000, ch. 6).

    Parameters
    ----------
    objective : object
        With ``loss_gradient``, ``hessian_product``, ``optimality`` and
        ``value_resolution`` (the relative rounding of its values).
    w0 : ndarray
        Starting point (float64, 1-D).
    tol : float
        Stop when ``objective.optimality(value, grad) <= tol``.
    max_iter : int
        Largest number of iterations (each one step tried: taken or not).
    verbose : int, default=0
        If positive, print the objective, the optimality, the radius and the
        number of Hessian-vector products at every iteration; from 2, also the
        conjugate gradients' residual every 10 products, or every second, within a step.
    warm_start : bool, default=False
        Whether ``w0`` is the solution of a nearby problem (another C).
    radius : float, default=None
        The first trust-region radius, where the caller knows the scale of a good step
        (the steps of the solver that ran before); None takes the first Newton step's
        length.

    Returns
    -------
    result : SolverResult
    """
    w = np.array(w0, dtype=np.float64)
    first_radius = radius if radius is not None and radius > 0 and np.isfinite(radius) else None
    value, grad = objective.loss_gradient(w)
    n_iter = 0
    n_products = 0
    # Only a bound on the first step, far beyond any useful one, that keeps its squared
    # length in range; the first step's length then becomes the radius.
    radius = first_radius or _FIRST_RADIUS * max(1.0, np.sqrt(w @ w))
    first_norm = None
    while True:
        optimality = objective.optimality(value, grad)
        if verbose > 0:
            _report(
                "newton-cg", n_iter, value, optimality,
                f"  radius {radius:.3e}  Hessian products {n_products}",
            )
        if optimality <= tol:
            return SolverResult(w, float(value), n_iter, True, "gradient below tol")
        if n_iter >= max_iter:
            return SolverResult(w, float(value), n_iter, False, "reached max_iter", True)
        if radius <= np.finfo(np.float64).eps * max(np.sqrt(w @ w), 1.0):
            return SolverResult(
                w, float(value), n_iter, False,
                "the trust region shrank below the rounding of the parameters: "
                "no step decreases the objective",
            )
        n_iter += 1
        grad_norm = np.sqrt(grad @ grad)
        if first_norm is None:
            first_norm = grad_norm
        # The gradient relative to the objective, as the stopping test measures it.
        scaled = grad_norm / abs(value) if value else grad_norm
        relative = grad_norm / first_norm if warm_start else 0.0
        forcing = min(0.5, max(scaled, relative))
        # No more accurate than the stopping test needs: the next gradient is about the
        # CG residual, so a residual of a tenth of tol (relative to F) is enough.
        residual = max(forcing * grad_norm, min(_RESIDUAL_OF_TOL * tol * abs(value), 0.5 * grad_norm))
        with np.errstate(over="ignore", invalid="ignore"):
            step, predicted, products = _steihaug_cg(
                lambda v: objective.hessian_product(w, v),
                grad, radius, residual, _MAX_CG_ITER,
                progress=_cg_progress(n_iter, residual) if verbose >= 2 else None,
            )
        n_products += products
        step_norm = np.sqrt(step @ step)
        if n_iter == 1 and first_radius is None:
            radius = step_norm  # the first radius: the first Newton step's length
        w_next = w + step
        value_next, grad_next = objective.loss_gradient(w_next)
        actual = value - value_next
        slope = grad @ step
        # Minimizer along the step of the quadratic through value, slope and value_next.
        curvature = value_next - value - slope
        alpha = _SIGMA3 if not curvature > 0 else max(_MIN_SHRINK, -0.5 * slope / curvature)
        # A decrease below F's rounding cannot be measured: the gradient guides those steps.
        noise = objective.value_resolution * abs(value)
        if predicted <= noise:
            # Below the resolution of F: take a step that F does not see rise (by more than
            # its rounding) and that reduces the gradient (F alone cannot tell a wild step
            # from a good one there).
            accept = actual >= -noise and grad_next @ grad_next < grad_norm * grad_norm
            ratio = 1.0 if accept else 0.0
        else:
            ratio = actual / predicted if np.isfinite(value_next) else -np.inf
            accept = ratio > _ETA0
        if ratio < _ETA0:
            radius = min(alpha * step_norm, _SIGMA2 * radius)
        elif ratio < _ETA1:
            radius = max(_SIGMA1 * radius, min(alpha * step_norm, _SIGMA2 * radius))
        elif ratio < _ETA2:
            radius = max(_SIGMA1 * radius, min(alpha * step_norm, _SIGMA3 * radius))
        else:
            radius = max(radius, min(alpha * step_norm, _SIGMA3 * radius))
        if accept:
            w, value, grad = w_next, value_next, grad_next


def lbfgs_then_newton_cg(objective, w0, *, tol, max_iter, verbose=0, warm_start=False):
    """L-BFGS; where it stops without converging, newton-cg from its last iterate.

    L-BFGS is the faster of the two on well-conditioned problems, where each of its
    iterations costs one pass over X and few are needed. It hands over to newton-cg
    when it stalls, or when, after 30 iterations, the rate at which it reduces the
    optimality projects more than 60 further iterations (``_too_slow``: nearly
    separable classes under a
    weak penalty, curvature that differs by orders of magnitude between directions,
    which no rescaling of the features removes); newton-cg's Hessian products take
    it to the optimum in a few steps. Both share one budget of ``max_iter``
    iterations, and the hand-over does not depend on ``max_iter``, so a larger
    ``max_iter`` continues the same sequence of iterates. ``warm_start`` is ignored.
    """
    first = lbfgs(objective, w0, tol=tol, max_iter=max_iter, verbose=verbose, hand_over=True)
    if first.converged or first.n_iter >= max_iter:
        return first
    if verbose > 0:
        print(f"[auto] L-BFGS after {first.n_iter} iterations: {first.message}; "
              f"newton-cg from its last iterate", flush=True)
    second = newton_cg(
        objective, first.w, tol=tol, max_iter=max_iter - first.n_iter, verbose=verbose,
        radius=_HAND_OVER_RADIUS * first.last_step,
    )
    return SolverResult(
        w=second.w,
        objective=second.objective,
        n_iter=first.n_iter + second.n_iter,
        converged=second.converged,
        message=second.message,
        reached_max_iter=second.reached_max_iter,
    )


def owlqn(objective, w0, *, tol, max_iter, verbose=0, warm_start=False):
    """Minimize a smooth objective plus an L1 term by OWL-QN (``_owlqn.minimize_owlqn``).

    Parameters
    ----------
    objective : _penalty.CompositeObjective
    w0 : ndarray
        Starting point (float64, 1-D).
    tol : float
        Stop when ``objective.optimality(value, subgradient) <= tol``: the largest
        entry of the minimum-norm subgradient relative to the objective.
    max_iter : int
        Largest number of iterations; 0 returns ``w0``.
    verbose : int, default=0
        If positive, print the objective and the optimality at every iteration.
    warm_start : bool, default=False
        Whether ``w0`` is the solution of a nearby problem; OWL-QN makes no use of it.

    Returns
    -------
    result : SolverResult
    """
    def callback(iteration, w, value, optimality):
        if verbose > 0:
            _report("owl-qn", iteration, value, optimality,
                    f"  non-zero {np.count_nonzero(w)} of {w.shape[0]}")

    w, value, n_iter, status = minimize_owlqn(
        objective, w0, tol=tol, max_iter=max_iter, callback=callback)
    messages = {
        "converged": "minimum-norm subgradient below tol",
        "max_iter": "reached max_iter",
        "line search": "OWL-QN stopped making progress before the subgradient met tol "
                       "(no step along its direction decreased the objective)",
        "stalled": "OWL-QN made no progress that rounding can resolve in the last "
                   "200 iterations",
    }
    return SolverResult(
        w=w, objective=float(value), n_iter=n_iter, converged=status == "converged",
        message=messages[status], reached_max_iter=status == "max_iter",
    )
