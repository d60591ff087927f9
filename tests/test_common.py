"""scikit-learn's estimator checks, run on SoftmaxRegressor with no expected failures:
with solver="auto", and with solver="sag" (the solver "auto" runs on normalized sparse
rows, which the checks' data rarely are), at a tol tight enough for the checks that
compare fits (sample weights against repeated rows), which SAG's stopping point at the
default tol=1e-4 does not meet to their 1e-7."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxreg import SoftmaxRegressor


@parametrize_with_checks([SoftmaxRegressor(), SoftmaxRegressor(solver="sag", tol=1e-8, max_iter=20_000)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
