"""SoftmaxRegressorCV: its attributes (LogisticRegressionCV's layout with
use_legacy_attributes=False), its paths against independent fits, its choice against
LogisticRegressionCV's, parallel paths, and its errors."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

from softmaxreg import SoftmaxRegressor, SoftmaxRegressorCV


def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_attributes_have_logistic_regression_cv_layout(n_classes, fit_intercept, sparse):
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4,
                               n_classes=n_classes, random_state=0)
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0))
    Cs, ratios = [0.1, 10.0, 1.0], (0.0, 0.5)
    clf = SoftmaxRegressorCV(Cs=Cs, l1_ratios=ratios, cv=4, fit_intercept=fit_intercept,
                             max_iter=1000).fit(X, y)
    rows = 1 if n_classes == 2 else n_classes
    dof = X.shape[1] + fit_intercept
    assert clf.coefs_paths_.shape == (4, 2, 3, rows, dof)
    assert clf.scores_.shape == clf.n_iter_.shape == (4, 2, 3)
    assert clf.n_iter_.dtype == np.int32 and (clf.n_iter_ > 0).all()
    assert_array_equal(clf.Cs_, Cs)  # the order given
    assert_array_equal(clf.l1_ratios_, ratios)
    assert isinstance(clf.C_, float) and clf.C_ in Cs
    assert isinstance(clf.l1_ratio_, float) and clf.l1_ratio_ in ratios
    assert clf.coef_.shape == (rows, X.shape[1]) and clf.intercept_.shape == (rows,)
    assert_array_equal(clf.classes_, np.unique(y))
    # The choice: the best mean score over the folds.
    ratio, index = np.unravel_index(np.argmax(clf.scores_.sum(axis=0)), (2, 3))
    assert (clf.C_, clf.l1_ratio_) == (Cs[index], ratios[ratio])
    # The refit is the model of that C and l1_ratio on all the data, exactly.
    ref = SoftmaxRegressor(C=clf.C_, l1_ratio=clf.l1_ratio_, fit_intercept=fit_intercept,
                           max_iter=1000).fit(X, y)
    assert_array_equal(clf.coef_, ref.coef_)
    assert_array_equal(clf.intercept_, ref.intercept_)


def test_each_path_entry_is_the_fit_on_its_fold():
    X, y = wine()
    folds = list(StratifiedKFold(3).split(X, y))
    Cs = [0.01, 1.0, 100.0]
    clf = SoftmaxRegressorCV(Cs=Cs, l1_ratios=(0.0, 1.0), cv=folds, tol=1e-10,
                             max_iter=10_000).fit(X, y)
    for f, (train, test) in enumerate(folds):
        for r, ratio in enumerate((0.0, 1.0)):
            for c, C in enumerate(Cs):
                cold = SoftmaxRegressor(C=C, l1_ratio=ratio, tol=1e-10, max_iter=10_000)
                cold.fit(X[train], y[train])
                path = clf.coefs_paths_[f, r, c]
                assert_allclose(path[:, :-1], cold.coef_, atol=1e-5)
                assert_allclose(path[:, -1], cold.intercept_, atol=1e-5)
                expected = -log_loss(y[test], cold.predict_proba(X[test]), labels=cold.classes_)
                assert clf.scores_[f, r, c] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("data", ["iris", "wine"])
def test_same_choice_and_scores_as_logistic_regression_cv(data):
    X, y = load_iris(return_X_y=True) if data == "iris" else wine()
    Cs = np.logspace(-3, 3, 7)
    cv = StratifiedKFold(5)
    ours = SoftmaxRegressorCV(Cs=Cs, cv=cv, tol=1e-10, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = LogisticRegressionCV(Cs=Cs, cv=cv, scoring="neg_log_loss", tol=1e-10,
                                      max_iter=100_000, l1_ratios=(0.0,),
                                      use_legacy_attributes=False).fit(X, y)
    assert ours.C_ == theirs.C_
    assert ours.scores_.shape == theirs.scores_.shape
    assert_allclose(ours.scores_, theirs.scores_, rtol=1e-4, atol=1e-6)
    assert_allclose(ours.coefs_paths_, theirs.coefs_paths_, atol=5e-3 * np.abs(
        theirs.coefs_paths_).max())


def test_refit_false_averages_the_folds():
    X, y = wine()
    clf = SoftmaxRegressorCV(Cs=[0.01, 0.1, 1.0], cv=3, refit=False).fit(X, y)
    best = clf.scores_.reshape(3, -1).argmax(axis=1)
    assert clf.C_ == pytest.approx(np.mean(clf.Cs_[best]))
    mean = np.mean([clf.coefs_paths_[f, 0, best[f]] for f in range(3)], axis=0)
    assert_allclose(clf.coef_, mean[:, :-1])
    assert_allclose(clf.intercept_, mean[:, -1])


@pytest.mark.parametrize("n_jobs", [2, -1])
def test_parallel_paths_give_the_serial_result(n_jobs):
    X, y = wine()
    kwargs = dict(Cs=5, l1_ratios=(0.0, 0.5), cv=3)
    serial = SoftmaxRegressorCV(n_jobs=1, **kwargs).fit(X, y)
    parallel = SoftmaxRegressorCV(n_jobs=n_jobs, **kwargs).fit(X, y)
    assert_array_equal(parallel.scores_, serial.scores_)
    assert_array_equal(parallel.coefs_paths_, serial.coefs_paths_)


def test_blas_limits_are_left_as_found():
    before = [(info["internal_api"], info["num_threads"]) for info in threadpool_info()]
    X, y = wine()
    SoftmaxRegressorCV(Cs=4, cv=3, n_jobs=2).fit(X, y)
    assert [(info["internal_api"], info["num_threads"]) for info in threadpool_info()] == before


def test_scoring_and_score():
    X, y = load_iris(return_X_y=True)
    acc = SoftmaxRegressorCV(Cs=3, cv=3, scoring="accuracy").fit(X, y)
    assert acc.score(X, y) == pytest.approx((acc.predict(X) == y).mean())
    nll = SoftmaxRegressorCV(Cs=3, cv=3).fit(X, y)
    assert nll.score(X, y) == pytest.approx(-log_loss(y, nll.predict_proba(X)))
    default = SoftmaxRegressorCV(Cs=3, cv=3, scoring=None).fit(X, y)
    assert default.score(X, y) == pytest.approx((default.predict(X) == y).mean())


def test_in_a_pipeline_and_cross_val_score():
    X, y = load_iris(return_X_y=True)
    scores = cross_val_score(make_pipeline(StandardScaler(), SoftmaxRegressorCV(Cs=3, cv=3)),
                             X, y, cv=3, scoring="accuracy")
    assert scores.shape == (3,) and (scores > 0.8).all()


def test_float32_stays_float32():
    X, y = wine()
    clf = SoftmaxRegressorCV(Cs=3, cv=3).fit(X.astype(np.float32), y)
    assert clf.coef_.dtype == np.float32


def test_a_fold_without_a_class_is_a_clear_error():
    X, y = load_iris(return_X_y=True)  # sorted by class: unshuffled folds miss classes
    with pytest.raises(ValueError, match="fold 0 have no sample of the classes"):
        SoftmaxRegressorCV(cv=KFold(3)).fit(X, y)


@pytest.mark.parametrize("Cs", [[], [0.0, 1.0], [-1.0], [np.nan]])
def test_bad_cs_are_a_clear_error(Cs):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="Cs must be"):
        SoftmaxRegressorCV(Cs=Cs).fit(X, y)


@pytest.mark.parametrize("ratios", [[], [1.5], [-0.1, 0.5], [np.nan]])
def test_bad_l1_ratios_are_a_clear_error(ratios):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="l1_ratios must be"):
        SoftmaxRegressorCV(l1_ratios=ratios).fit(X, y)


def test_the_paths_run_from_the_strongest_penalty_warm_started():
    X, y = wine()
    clf = SoftmaxRegressorCV(Cs=[100.0, 0.01, 1.0], cv=3, tol=1e-8, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    # Warm starts: the later fits of a path take fewer iterations than cold ones.
    cold = [SoftmaxRegressor(C=C, tol=1e-8, max_iter=1000).fit(X[train], y[train]).n_iter_[0]
            for C in (1.0, 100.0) for train, _ in StratifiedKFold(3).split(X, y)]
    assert clf.n_iter_[:, 0, [2, 0]].sum() < sum(cold)


def test_a_class_missing_from_held_out_rows_is_scored_as_logistic_regression_cv_does():
    X, y = load_iris(return_X_y=True)
    y = y.copy()
    y[:3] = 3  # a class of 3 rows: some folds hold none of it out
    Cs = [0.1, 1.0, 10.0]
    ours = SoftmaxRegressorCV(Cs=Cs, cv=5, tol=1e-10, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = LogisticRegressionCV(Cs=Cs, cv=5, scoring="neg_log_loss", tol=1e-10,
                                      max_iter=100_000, l1_ratios=(0.0,),
                                      use_legacy_attributes=False).fit(X, y)
    assert np.isfinite(ours.scores_).all()
    assert_allclose(ours.scores_, theirs.scores_, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("scoring", ["f1", "neg_brier_score", "roc_auc"])
def test_binary_string_labels_with_a_positive_class_metric(scoring):
    X, y = load_iris(return_X_y=True)
    labels = np.where(y == 2, "virginica", "other")
    clf = SoftmaxRegressorCV(Cs=3, cv=3, scoring=scoring).fit(X, labels)
    assert np.isfinite(clf.scores_).all()


def test_sample_weight_weighs_the_scores_as_logistic_regression_cv():
    X, y = wine()
    weights = np.random.default_rng(0).uniform(0.1, 3.0, size=y.shape[0])
    Cs = [0.01, 0.1, 1.0]
    ours = SoftmaxRegressorCV(Cs=Cs, cv=3, tol=1e-10, max_iter=10_000).fit(
        X, y, sample_weight=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = LogisticRegressionCV(Cs=Cs, cv=3, scoring="neg_log_loss", tol=1e-10,
                                      max_iter=100_000, l1_ratios=(0.0,),
                                      use_legacy_attributes=False).fit(
            X, y, sample_weight=weights)
    assert_allclose(ours.scores_, theirs.scores_, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "sag"])
def test_a_smooth_solver_with_l1_ratios_fails_before_fitting(solver):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=f"solver='{solver}'.*'owl-qn'"):
        SoftmaxRegressorCV(solver=solver, l1_ratios=(0.0, 1.0)).fit(X, y)
