"""The solvers: the same optimum from every solver, conjugate gradients, the auto fallback."""

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning

from softmaxreg import SoftmaxRegressor
from softmaxreg._objective import LinearSoftmaxObjective
from softmaxreg._preconditioning import StandardizedObjective
from softmaxreg._solvers import _steihaug_cg, lbfgs, lbfgs_then_newton_cg, newton_cg

SOLVERS = ["lbfgs", "newton-cg", "auto"]


def raw(loader):
    X, y = loader(return_X_y=True)
    return np.ascontiguousarray(X), y


def weighted_problem():
    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
    X = X * [1e-2, 1, 1e2, 1, 10, 1] + [0, 50, 0, -3, 0, 1e3]
    sample_weight = np.random.default_rng(0).uniform(0, 3, 300)
    return X, y, sample_weight


def binary_problem():
    X, y = make_classification(200, 5, random_state=0)
    return X * [1, 1e3, 1, 1e-3, 1], y


PROBLEMS = {  # raw, unscaled features: pixel counts 0-16, wine's proline ~1e3 next to ratios ~1
    "digits": lambda: (*raw(load_digits), None),
    "wine": lambda: (*raw(load_wine), None),
    "iris": lambda: (*raw(load_iris), None),
    "weighted": weighted_problem,
    "binary": lambda: (*binary_problem(), None),
}


def objective_value(X, y, sample_weight, model, C=1.0):
    """F at a fitted model, from the objective in the model's coordinates (float64)."""
    labels = np.searchsorted(model.classes_, y)
    sw = np.empty(0) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    objective = LinearSoftmaxObjective(
        np.ascontiguousarray(X, dtype=np.float64), labels, len(model.classes_), sw,
        C=C, fit_intercept=True, n_threads=2,
    )
    return objective.loss_gradient(objective.pack(model.coef_, model.intercept_))[0]


@pytest.mark.parametrize("name", PROBLEMS)
def test_every_solver_reaches_the_same_optimum(name):
    """On raw data, every solver at tol=1e-9 reaches the same objective (1e-9 relative) and
    the same model (probabilities to 1e-5; coefficients to 1e-4 of the largest, as raw
    digits leave the objective nearly flat along some directions)."""
    X, y, sample_weight = PROBLEMS[name]()
    models = {
        solver: SoftmaxRegressor(solver=solver, tol=1e-9, max_iter=5000).fit(X, y, sample_weight)
        for solver in SOLVERS
    }
    values = {solver: objective_value(X, y, sample_weight, m) for solver, m in models.items()}
    best = min(values.values())
    reference = models["newton-cg"]
    for solver, m in models.items():
        assert values[solver] <= best * (1 + 1e-9), solver
        assert_allclose(m.coef_, reference.coef_, rtol=0, atol=1e-4 * np.abs(reference.coef_).max())
        assert_allclose(m.predict_proba(X), reference.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
def test_solvers_fit_float32(solver):
    """float32 data: each solver gives float32 coefficients close to the float64 model."""
    X, y = raw(load_iris)
    single = SoftmaxRegressor(solver=solver).fit(X.astype(np.float32), y)
    double = SoftmaxRegressor(solver=solver, tol=1e-8).fit(X, y)
    assert single.coef_.dtype == np.float32
    assert_allclose(single.predict_proba(X), double.predict_proba(X), atol=2e-3)


def spd_system(seed=0, n=6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A @ A.T + 0.1 * np.eye(n), rng.standard_normal(n)


def test_conjugate_gradient_solves_a_positive_definite_system():
    """CG on an SPD 6x6 system without a bound: the exact solution within 6 products (to
    rounding), and the model decrease -(g.p + p.H.p / 2) it reports."""
    H, g = spd_system()
    p, decrease, n_products = _steihaug_cg(lambda v: H @ v, g, np.inf, 1e-12, 50)
    assert_allclose(H @ p, -g, atol=1e-9)
    assert n_products <= 7
    assert_allclose(decrease, -(g @ p + 0.5 * p @ H @ p), rtol=1e-12)


@pytest.mark.parametrize("radius", [1e-3, 0.1, 1.0])
def test_conjugate_gradient_stops_on_the_trust_region_boundary(radius):
    """Where the Newton step is longer than the radius, the step ends on the boundary, is a
    descent direction, and its reported decrease is the model's."""
    H, g = spd_system(1)
    newton = np.linalg.solve(H, -g)
    assert np.linalg.norm(newton) > radius
    p, decrease, _ = _steihaug_cg(lambda v: H @ v, g, radius, 1e-12, 50)
    assert_allclose(np.linalg.norm(p), radius, rtol=1e-12)
    assert g @ p < 0
    assert_allclose(decrease, -(g @ p + 0.5 * p @ H @ p), rtol=1e-10)


@pytest.mark.parametrize("radius", [np.inf, 2.0])
def test_conjugate_gradient_stops_at_non_positive_curvature(radius):
    """Without positive curvature along the first direction, the answer is steepest descent:
    -g itself without a bound, or to the boundary within one."""
    g = np.array([1.0, -2.0])
    p, _, n_products = _steihaug_cg(lambda v: np.zeros_like(v), g, radius, 1e-12, 10)
    expected = -g if np.isinf(radius) else -g * radius / np.linalg.norm(g)
    assert_allclose(p, expected)
    assert n_products == 1


def standardized_digits(C=1.0):
    X, y = raw(load_digits)
    objective = LinearSoftmaxObjective(X, y.astype(np.intp), 10, np.empty(0), C=C, fit_intercept=True, n_threads=2)
    return StandardizedObjective(objective, n_threads=2)


def test_auto_hands_over_to_newton_cg_where_lbfgs_is_slow():
    """On raw digits, L-BFGS is slow to reach tol=1e-6: the auto solver hands over to
    newton-cg after L-BFGS's rate of progress shows it (not at max_iter), and converges within
    one budget of max_iter iterations. Where L-BFGS converges quickly, it runs alone."""
    objective = standardized_digits()
    w0 = np.zeros(objective.n_params)
    alone = lbfgs(objective, w0, tol=1e-6, max_iter=60)
    assert alone.reached_max_iter and not alone.converged
    result = lbfgs_then_newton_cg(objective, w0, tol=1e-6, max_iter=60)
    assert result.converged and result.n_iter <= 60
    assert objective.optimality(*objective.loss_gradient(result.w)) <= 1e-6
    easy = lbfgs_then_newton_cg(objective, w0, tol=0.5, max_iter=30)
    alone = lbfgs(objective, w0, tol=0.5, max_iter=30)
    assert alone.converged and easy.n_iter == alone.n_iter


@pytest.mark.parametrize("solver", [lbfgs, newton_cg, lbfgs_then_newton_cg])
def test_solvers_stop_at_once_from_the_optimum(solver):
    """From a point that meets tol, a solver takes no iteration and returns that point."""
    objective = standardized_digits()
    optimum = newton_cg(objective, np.zeros(objective.n_params), tol=1e-8, max_iter=100).w
    result = solver(objective, optimum, tol=1e-6, max_iter=100)
    assert result.n_iter == 0 and result.converged
    assert_allclose(result.w, optimum, rtol=0, atol=0)


# At tol=1e-8 L-BFGS may stall where the objective no longer changes in float64, and warns.
@pytest.mark.filterwarnings("ignore:SoftmaxRegressor \\(lbfgs\\) did not converge")
@pytest.mark.parametrize("solver", SOLVERS)
def test_warm_started_path_reaches_the_cold_objectives(solver):
    """A path over C with warm starts reaches the objectives of cold fits (1e-7 relative at
    tol=1e-8); newton-cg needs fewer iterations in total (L-BFGS restarts its memory, so a
    warm start saves it little)."""
    X, y = raw(load_iris)
    Cs = np.logspace(-3, 3, 5)
    warm = SoftmaxRegressor(solver=solver, warm_start=True, tol=1e-8, max_iter=2000)
    warm_iterations = cold_iterations = 0
    for C in Cs:
        warm.set_params(C=C).fit(X, y)
        cold = SoftmaxRegressor(solver=solver, C=C, tol=1e-8, max_iter=2000).fit(X, y)
        warm_iterations += warm.n_iter_
        cold_iterations += cold.n_iter_
        warm_value, cold_value = (objective_value(X, y, None, m, C) for m in (warm, cold))
        assert_allclose(warm_value, cold_value, rtol=1e-7)
    if solver == "newton-cg":
        assert warm_iterations < cold_iterations


@pytest.mark.parametrize("solver", SOLVERS)
def test_convergence_warning_names_the_solver_and_max_iter(solver):
    X, y = raw(load_digits)
    with pytest.warns(ConvergenceWarning, match="max_iter=2.*Increase max_iter"):
        m = SoftmaxRegressor(solver=solver, max_iter=2).fit(X, y)
    assert_array_equal(m.n_iter_, [2])  # one budget, auto included


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_verbose_reports_every_iteration(solver, capsys):
    """One line per iteration, plus the start: objective, max|grad| (and products for newton-cg)."""
    X, y = raw(load_iris)
    m = SoftmaxRegressor(solver=solver, verbose=1).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"[{solver}]")]
    assert len(lines) == m.n_iter_ + 1
    assert "objective" in lines[-1] and "max|grad|/objective" in lines[-1]
    if solver == "newton-cg":
        assert "Hessian products" in lines[-1]


def test_no_convergence_warning_on_raw_digits_with_defaults():
    """Where LogisticRegression() stops at max_iter on raw digits, the default solver converges
    within max_iter: L-BFGS hands over to newton-cg."""
    X, y = raw(load_digits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = SoftmaxRegressor().fit(X, y)
    assert m.n_iter_[0] <= 100


def test_newton_cg_from_a_saturated_start_converges():
    """The issue's path at the solver level (no fallback to a cold start): from raw digits'
    optimum at C=1e4, newton-cg on the C=1e-4 problem converges to tol, where the Newton
    steps of a saturated softmax are unbounded (CG directions of norm ~1e19) and a line
    search along them found no step."""
    objective = standardized_digits(C=1e4)
    start = newton_cg(objective, np.zeros(objective.n_params), tol=1e-6, max_iter=200)
    assert start.converged
    target = standardized_digits(C=1e-4)
    w0 = target.to_solver(objective.to_model(start.w))
    result = newton_cg(target, w0, tol=1e-8, max_iter=200, warm_start=True)
    assert result.converged, result.message
    cold = newton_cg(target, np.zeros(target.n_params), tol=1e-10, max_iter=200)
    assert result.objective <= cold.objective * (1 + 1e-8)


def test_verbose_header_hand_over_and_closing_lines(capsys):
    """verbose=1: a header (shape, classes, solver, tol, threads), the hand-over of "auto" to
    newton-cg, and a closing line; verbose=2 adds the conjugate gradients' progress."""
    X, y = raw(load_digits)
    model = SoftmaxRegressor(verbose=1).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"\[SoftmaxRegressor\] 1797 x 64 float64, 10 classes, C=1; solver lbfgs, "
                    r"then newton-cg, tol=0.0001, max_iter=100; up to \d+ OpenMP thread", out[0])
    assert any(line.startswith("[auto] L-BFGS after") and "newton-cg" in line for line in out)
    assert re.match(rf"\[SoftmaxRegressor\] converged after {model.n_iter_[0]} iterations in "
                    r"\d+\.\d+ s", out[-1])
    assert not any("CG product" in line for line in out)
    SoftmaxRegressor(verbose=2, solver="newton-cg").fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert any(re.search(r"CG product +\d+  residual \S+ \(to \S+\)", line) for line in out)


def test_verbose_closing_line_says_why_not(capsys):
    X, y = raw(load_digits)
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegressor(verbose=1, max_iter=3).fit(X, y)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("[SoftmaxRegressor] did not converge after 3 iterations") and "max_iter" in last
