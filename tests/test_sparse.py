"""Sparse X end to end: the same model as on the dense copy, every SciPy layout, no
densification, and the pipelines that produce sparse data (text, one-hot)."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from softmaxreg import SoftmaxRegressor


def sparse_problem(n_classes, dtype, seed=0):
    """A sparse-ish problem with an empty row, an empty column and a column stored in
    every row with the same value (constant)."""
    X, y = make_classification(n_samples=300, n_features=12, n_informative=6,
                               n_classes=n_classes, random_state=seed)
    X[np.abs(X) < 0.8] = 0
    X[:, 3] = 0  # an empty column
    X[5] = 0  # an empty row
    X[:, 7] = 2.5  # constant
    return X.astype(dtype), y


def layouts(X, index_dtype):
    """The same matrix as CSR (sorted, unsorted, with duplicates and explicit zeros), CSC,
    COO and a sparse array."""
    csr = sp.csr_matrix(X)
    csr.indices = csr.indices.astype(index_dtype)
    csr.indptr = csr.indptr.astype(index_dtype)
    # Unsorted within rows, one entry split into two duplicates, an explicit zero.
    coo = csr.tocoo()
    rows, cols, vals = coo.row, coo.col, coo.data
    order = np.random.default_rng(0).permutation(len(vals))
    rows = np.r_[rows[order], rows[0], 0]
    cols = np.r_[cols[order], cols[0], 1 if X[0, 1] == 0 else 3]
    vals = np.r_[vals[order], 0.0, 0.0]
    vals[np.flatnonzero(order == 0)[0]] /= 2  # the other half is the duplicate above
    vals[-2] = X[rows[-2], cols[-2]] / 2
    # A CSR matrix that keeps the duplicates and the order: not in canonical format.
    by_row = np.argsort(rows, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=X.shape[0]))].astype(index_dtype)
    unsummed = sp.csr_matrix(
        (vals[by_row].astype(X.dtype), cols[by_row].astype(index_dtype), indptr), shape=X.shape)
    assert not unsummed.has_canonical_format
    return {"csr": csr, "csc": sp.csc_matrix(X), "coo": sp.coo_matrix(X),
            "csr_array": sp.csr_array(X), "csr unsorted, duplicates, explicit zero": unsummed,
            "coo with duplicates": sp.coo_matrix((vals, (rows, cols)), shape=X.shape)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_sparse_fit_is_the_dense_fit(dtype, index_dtype, n_classes):
    """Coefficients within 1e-8 relative (float64; 1e-4 float32) of the dense fit at a tight
    tol, for every layout; predictions, probabilities and scores the same."""
    X, y = sparse_problem(n_classes, dtype)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    tol = 1e-10 if dtype == np.float64 else 1e-5
    rtol = 1e-8 if dtype == np.float64 else 1e-4
    dense = SoftmaxRegressor(tol=tol, max_iter=2000).fit(X, y, sample_weight=sw)
    assert_array_equal(dense.coef_[:, 7], 0.0)  # the constant column
    for name, Xs in layouts(X, index_dtype).items():
        model = SoftmaxRegressor(tol=tol, max_iter=2000).fit(Xs, y, sample_weight=sw)
        scale = np.abs(dense.coef_).max()
        assert_allclose(model.coef_, dense.coef_, rtol=rtol, atol=rtol * scale, err_msg=name)
        assert_allclose(model.intercept_, dense.intercept_, rtol=rtol, atol=rtol * scale)
        assert_array_equal(model.coef_[:, 7], 0.0)
        assert_array_equal(model.predict(Xs), dense.predict(X))
        assert_allclose(model.predict_proba(Xs), dense.predict_proba(X), atol=10 * rtol)
        assert_allclose(model.decision_function(Xs), dense.decision_function(X),
                        rtol=rtol, atol=rtol * scale)
        assert model.score(Xs, y) == dense.score(X, y)


def test_sparse_x_is_never_densified():
    """A 20,000 x 20,000 CSR matrix (3.2 GB dense) with 60,000 entries fits in a few MB."""
    rng = np.random.default_rng(0)
    n, d, nnz = 20_000, 20_000, 60_000
    X = sp.csr_matrix((rng.standard_normal(nnz), (rng.integers(0, n, nnz), rng.integers(0, d, nnz))),
                      shape=(n, d))
    y = rng.integers(0, 3, n)
    tracemalloc.start()
    try:
        with pytest.warns(ConvergenceWarning):
            model = SoftmaxRegressor(max_iter=5).fit(X, y)
        model.predict_proba(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_text_pipeline_in_a_grid_search():
    """TfidfVectorizer's sparse output straight into SoftmaxRegressor, inside GridSearchCV."""
    topics = {
        0: "kernel driver module linux device firmware hardware",
        1: "python library package module import numpy array",
        2: "font glyph unicode typeface rendering text display",
    }
    rng = np.random.default_rng(0)
    docs, labels = [], []
    for _ in range(90):
        label = int(rng.integers(3))
        words = topics[label].split() + topics[int(rng.integers(3))].split()[:2]
        docs.append(" ".join(rng.choice(words, size=8)))
        labels.append(label)
    search = GridSearchCV(make_pipeline(TfidfVectorizer(), SoftmaxRegressor()),
                          {"softmaxregressor__C": [0.1, 10.0]}, cv=3).fit(docs, labels)
    assert search.best_score_ > 0.8
    assert search.predict_proba(docs[:4]).shape == (4, 3)


def test_one_hot_column_transformer_in_a_grid_search():
    """OneHotEncoder (sparse) next to scaled numeric columns: the ColumnTransformer's output
    is sparse or dense depending on sparse_threshold, and both fit the same model."""
    iris = load_iris(as_frame=True)
    frame = iris.frame.copy()
    frame["bucket"] = pd.cut(frame["sepal length (cm)"], 8, labels=False).astype(str)
    frame["other"] = (frame.index % 5).astype(str)
    numeric = ["petal length (cm)", "petal width (cm)"]
    models = {}
    for threshold in (0.0, 1.0):  # 0: always dense; 1: sparse whenever any part is
        columns = ColumnTransformer(
            [("onehot", OneHotEncoder(), ["bucket", "other"]), ("num", StandardScaler(), numeric)],
            sparse_threshold=threshold)
        search = GridSearchCV(make_pipeline(columns, SoftmaxRegressor(tol=1e-10, max_iter=1000)),
                              {"softmaxregressor__C": [0.1, 1.0]}, cv=3)
        models[threshold] = search.fit(frame, iris.target).best_estimator_
    assert sp.issparse(models[1.0][0].transform(frame))
    assert not sp.issparse(models[0.0][0].transform(frame))
    assert_allclose(models[1.0][-1].coef_, models[0.0][-1].coef_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_columns_without_entries_are_not_fitted(n_classes):
    """Wide sparse X (hashed or one-hot) stores entries in few of its columns: the fit on
    X equals the fit on those columns alone, with exact zeros elsewhere, and a warm start
    from that model reaches it again."""
    rng = np.random.default_rng(n_classes)
    n, d = 400, 5000
    used = np.sort(rng.choice(d, 60, replace=False))
    X = sp.random(n, 60, density=0.1, random_state=rng, format="csr")
    wide = sp.csr_matrix((X.data, used[X.indices], X.indptr), shape=(n, d))
    wide.data[:5] = 0.0  # explicit zeros: stored, not fitted where nothing else is
    narrow = sp.csr_matrix(wide[:, used])
    y = rng.integers(0, n_classes, n)
    kwargs = dict(tol=1e-10, max_iter=2000, C=10.0)
    model = SoftmaxRegressor(**kwargs).fit(wide, y)
    reference = SoftmaxRegressor(**kwargs).fit(narrow, y)
    assert model.coef_.shape == (reference.coef_.shape[0], d)
    empty = np.ones(d, dtype=bool)
    empty[used] = False
    assert_array_equal(model.coef_[:, empty], 0.0)
    assert_allclose(model.coef_[:, used], reference.coef_, rtol=1e-8, atol=1e-10)
    assert_allclose(model.intercept_, reference.intercept_, rtol=1e-8, atol=1e-10)
    assert_allclose(model.predict_proba(wide), reference.predict_proba(narrow), atol=1e-10)
    warm = SoftmaxRegressor(warm_start=True, **kwargs)
    warm.coef_, warm.intercept_ = model.coef_ + 0.1, model.intercept_.copy()
    warm.fit(wide, y)
    assert_allclose(warm.coef_, model.coef_, rtol=1e-6, atol=1e-8)


def test_no_entries_at_all_fits_the_class_priors():
    """Without a single non-zero value the model has only intercepts: the log of the class
    frequencies (centred), exactly what the dense zero matrix gives."""
    y = np.repeat([0, 1, 2], [10, 30, 60])
    X = sp.csr_matrix((len(y), 7))
    model = SoftmaxRegressor(tol=1e-12).fit(X, y)
    dense = SoftmaxRegressor(tol=1e-12).fit(X.toarray(), y)
    assert_array_equal(model.coef_, 0.0)
    log_prior = np.log([0.1, 0.3, 0.6])
    assert_allclose(model.intercept_, log_prior - log_prior.mean(), rtol=1e-8)
    assert_allclose(dense.intercept_, model.intercept_, rtol=1e-8)


def _corpus():
    """The Debian package descriptions corpus (../shared/data/, beside the checkout), or
    None where it is absent (a clean clone elsewhere)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "debian_descriptions.tsv.gz"
    return path if path.exists() else None


@pytest.mark.skipif(_corpus() is None, reason="../shared/data/debian_descriptions.tsv.gz is absent")
def test_same_model_as_logistic_regression_on_the_text_corpus():
    """3,000 documents of the real corpus as TF-IDF (8 sections): at a tight tol, the
    objective and the coefficients of LogisticRegression's."""
    import csv

    from sklearn.linear_model import LogisticRegression

    frame = pd.read_csv(_corpus(), sep="\t", header=None, names=["section", "package", "text"],
                        quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    top = frame["section"].value_counts().index[:8]
    frame = frame[frame["section"].isin(top)].sample(n=3000, random_state=0)
    X = TfidfVectorizer(min_df=2, sublinear_tf=True).fit_transform(frame["text"])
    y = frame["section"].to_numpy()
    ours = SoftmaxRegressor(tol=1e-10, max_iter=5000).fit(X, y)
    theirs = LogisticRegression(tol=1e-12, max_iter=20000).fit(X, y)

    def objective(model):
        logits = np.asarray(X @ model.coef_.T) + model.intercept_
        labels = np.searchsorted(model.classes_, y)
        shift = logits.max(axis=1, keepdims=True)
        lse = shift[:, 0] + np.log(np.exp(logits - shift).sum(axis=1))
        return (lse - logits[np.arange(len(y)), labels]).sum() + 0.5 * (model.coef_**2).sum()

    assert objective(ours) <= objective(theirs) * (1 + 1e-12)
    assert_allclose(objective(ours), objective(theirs), rtol=1e-9)
    scale = np.abs(theirs.coef_).max()
    assert_allclose(ours.coef_, theirs.coef_, rtol=1e-4, atol=1e-5 * scale)
    assert_array_equal(ours.predict(X), theirs.predict(X))
