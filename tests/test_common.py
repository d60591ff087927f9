"""scikit-learn's estimator checks, run with no expected failures: on SoftmaxRegressor
with solver="auto", with solver="sag" (the solver "auto" runs on normalized sparse rows,
which the checks' data rarely are) and with the elastic-net penalty (OWL-QN), at a tol
tight enough for the checks that compare fits (sample weights against repeated rows),
which SAG's and OWL-QN's stopping points at the default tol=1e-4 do not meet to their
1e-7; and on SoftmaxRegressorCV, with both penalties, over values of C whose fits
converge on the checks' data (with C up to 1e4, the default grid's end, the classes of
the sample-weight checks are separable, and a fit stopped at max_iter differs at 1e-7
between weighted and repeated rows, for SoftmaxRegressor as well)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxreg import SoftmaxRegressor, SoftmaxRegressorCV


@parametrize_with_checks(
    [
        SoftmaxRegressor(),
        SoftmaxRegressor(solver="sag", tol=1e-8, max_iter=20_000),
        SoftmaxRegressor(l1_ratio=0.5, tol=1e-8, max_iter=20_000),
        SoftmaxRegressorCV(Cs=[0.01, 0.1, 1.0], l1_ratios=(0.0, 1.0), cv=3),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
