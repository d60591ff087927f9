"""L-BFGS: the two-loop recursion on the stored inner products, and the line search."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from softmaxreg import _lbfgs
from softmaxreg._lbfgs import MEMORY, _Pairs, minimize_lbfgs


def textbook_direction(pairs, grad):
    """-H grad by Nocedal & Wright's algorithm 7.4, pair by pair."""
    q = grad.copy()
    alphas = {}
    for i in reversed(pairs):
        s, y = i
        alphas[id(i)] = (s @ q) / (s @ y)
        q -= alphas[id(i)] * y
    s, y = pairs[-1]
    r = (s @ y) / (y @ y) * q
    for i in pairs:
        s, y = i
        beta = (y @ r) / (s @ y)
        r += s * (alphas[id(i)] - beta)
    return -r


@pytest.mark.parametrize("n_pairs", [1, 3, MEMORY, MEMORY + 4, 3 * MEMORY + 1])
@pytest.mark.parametrize("n", [37, 5003])  # within one block of the C loops, and several
def test_two_loop_is_the_textbook_recursion(n_pairs, n):
    """With the pairs stored in a ring (older ones overwritten), the direction equals the
    recursion over the last MEMORY pairs, oldest first."""
    rng = np.random.default_rng(n_pairs)
    diagonal, u = rng.uniform(1, 10, n), rng.standard_normal(n)

    def A(s):  # positive definite: y = A s has positive curvature
        return diagonal * s + (u @ s) * u

    pairs = _Pairs(n)
    history = []
    w, g = np.zeros(n), np.zeros(n)
    for _ in range(n_pairs):
        s = rng.standard_normal(n)
        history.append((s, A(s)))
        pairs.add(w + s, w, g + A(s), g)
        w, g = w + s, g + A(s)
    grad = rng.standard_normal(n)
    assert_allclose(pairs.direction(grad), textbook_direction(history[-MEMORY:], grad),
                    rtol=1e-12, atol=1e-12)


def test_pairs_without_positive_curvature_are_dropped():
    pairs = _Pairs(3)
    pairs.add(np.array([1.0, 0, 0]), np.zeros(3), np.array([-1.0, 0, 0]), np.zeros(3))
    assert pairs.order == []
    assert_allclose(pairs.direction(np.ones(3)), -np.ones(3))


class Quadratic:
    """F(w) = (w - c)^T A (w - c) / 2 + 1, with the solvers' interface."""

    value_resolution = 64 * np.finfo(np.float64).eps

    def __init__(self, n, condition, seed=0):
        rng = np.random.default_rng(seed)
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        self.A = Q @ np.diag(np.logspace(0, np.log10(condition), n)) @ Q.T
        self.c = rng.standard_normal(n)
        self.evaluations = 0

    def loss_gradient(self, w):
        self.evaluations += 1
        r = w - self.c
        g = self.A @ r
        return 0.5 * r @ g + 1.0, g

    def optimality(self, value, grad):
        return np.max(np.abs(grad)) / value


@pytest.mark.parametrize("condition", [1.0, 1e2, 1e4])
def test_minimize_lbfgs_reaches_the_minimum_of_a_quadratic(condition):
    """Below the rounding of F (the minimum is 1, the decreases end near 1e-16), the
    approximate Wolfe condition on the slope keeps it going to tol = 1e-10."""
    objective = Quadratic(30, condition)
    w, value, grad, n_iter, status = minimize_lbfgs(
        objective, np.zeros(30), tol=1e-10, max_iter=10_000)
    assert status == "converged"
    assert np.max(np.abs(grad)) <= 1e-10 * value
    assert_allclose(w, objective.c, rtol=0, atol=1e-8 * condition)
    assert objective.evaluations <= 2 * n_iter + 10  # the unit step is accepted mostly


def test_minimize_lbfgs_continues_the_same_sequence_for_a_larger_max_iter():
    results = [minimize_lbfgs(Quadratic(20, 1e4), np.zeros(20), tol=1e-12, max_iter=m)
               for m in (5, 10, 40)]
    values = [r[1] for r in results]
    assert values[0] >= values[1] >= values[2]
    again = minimize_lbfgs(Quadratic(20, 1e4), np.zeros(20), tol=1e-12, max_iter=10)
    assert_allclose(again[0], results[1][0], rtol=0, atol=0)


def test_a_failed_line_search_is_reported():
    """A direction along which no step decreases F (a gradient that lies): status "line
    search", never "converged"."""

    class Liar(Quadratic):
        def loss_gradient(self, w):
            value, grad = super().loss_gradient(w)
            return value, -grad

    w, value, grad, n_iter, status = minimize_lbfgs(Liar(5, 1.0), np.ones(5), tol=1e-8, max_iter=50)
    assert status == "line search" and n_iter == 0


def test_non_finite_trials_shrink_the_step(monkeypatch):
    """Where a trial step overflows (value inf), the search backs off instead of stopping."""
    objective = Quadratic(5, 10.0)
    real = objective.loss_gradient

    def overflowing(w):
        value, grad = real(w)
        return (np.inf, np.zeros_like(w)) if np.max(np.abs(w)) > 3 else (value, grad)

    objective.loss_gradient = overflowing
    objective.c = np.full(5, 2.0)
    w, value, grad, n_iter, status = minimize_lbfgs(objective, np.full(5, -2.9), tol=1e-8,
                                                    max_iter=200)
    assert status == "converged"
    assert_allclose(w, objective.c, atol=1e-6)
    assert _lbfgs.MAX_LINE_SEARCH == 50


def test_pair_loops_do_not_depend_on_the_thread_count():
    """The C loops over the pairs add their blocks' partial sums in block order: 1 and 2
    threads give the same direction, to the bit."""
    n = 3 * 2048 + 17
    grad = np.random.default_rng(0).standard_normal(n)
    results = []
    for n_threads in (1, 2):
        pairs = _Pairs(n, n_threads)
        w, g = np.zeros(n), np.zeros(n)
        local = np.random.default_rng(1)
        for _ in range(MEMORY + 2):
            s = local.standard_normal(n)
            y = s * local.uniform(1, 3, n)
            pairs.add(w + s, w, g + y, g)
            w, g = w + s, g + y
        results.append((pairs.direction(grad), pairs.SY.copy()))
    assert_array_equal(results[0][0], results[1][0])
    assert_array_equal(results[0][1], results[1][1])
