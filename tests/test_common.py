"""scikit-learn's estimator checks, run on SoftmaxRegressor with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxreg import SoftmaxRegressor


@parametrize_with_checks([SoftmaxRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
