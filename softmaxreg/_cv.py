"""SoftmaxRegressorCV: C (and l1_ratio) chosen by cross-validation, over warm-started paths.

It composes :class:`~softmaxreg.SoftmaxRegressor`: each (fold, l1_ratio) fits one
estimator along the values of C with ``warm_start=True``, from the strongest penalty
to the weakest, so each fit starts from the optimum of a nearby problem. The paths run
in parallel in threads, with the OpenMP threads split between them.
"""

from numbers import Integral, Real

import inspect

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import _fit_context
from sklearn.metrics import check_scoring, make_scorer
from sklearn.model_selection import check_cv
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from ._estimator import SoftmaxRegressor
from ._fit_data import check_targets
from ._threads import KernelThreads
from ._validation import check_sample_weight


class SoftmaxRegressorCV(SoftmaxRegressor):
    """Softmax regression with C and ``l1_ratio`` chosen by cross-validation.

    The cross-validated counterpart of :class:`SoftmaxRegressor`, as
    :class:`~sklearn.linear_model.LogisticRegressionCV` is of ``LogisticRegression``,
    with ``LogisticRegressionCV``'s attribute layout of scikit-learn 1.9 with
    ``use_legacy_attributes=False``. For every fold and every value of
    ``l1_ratios``, one :class:`SoftmaxRegressor` fits the path of ``Cs`` from the
    smallest C (the strongest penalty) to the largest, each fit warm-started from
    the previous one, and is scored on the fold's held-out rows after each fit. The
    (C, l1_ratio) of the best mean score over the folds is then refitted on all the
    data, from zero coefficients, so the model is exactly that of
    ``SoftmaxRegressor(C=C_, l1_ratio=l1_ratio_, ...)`` with the same other parameters.

    Parameters
    ----------
    Cs : int or array-like of float, default=10
        The values of C: an int n gives ``np.logspace(-4, 4, n)``, as in
        ``LogisticRegressionCV``; otherwise positive floats (``np.inf`` allowed), in
        any order (``Cs_`` keeps it; the paths run in increasing order).
    l1_ratios : array-like of float, default=(0.0,)
        Values of ``l1_ratio`` in [0, 1] to try (see :class:`SoftmaxRegressor`).
    cv : int, cross-validation generator or iterable, default=None
        As in ``LogisticRegressionCV``: None is 5-fold
        :class:`~sklearn.model_selection.StratifiedKFold`, an int that many folds.
    scoring : str or callable, default="neg_log_loss"
        The score to maximize (see :func:`sklearn.metrics.check_scoring`); None is
        the accuracy. Computed on each fold's held-out rows, with their
        ``sample_weight`` where given, and, as in ``LogisticRegressionCV``, with every
        class of y as the metric's ``labels`` (and ``classes_[1]`` as its
        ``pos_label`` for two classes) where it takes them, so a fold whose held-out
        rows miss a class is scored.
    refit : bool, default=True
        Whether to refit on all the data with the best C and ``l1_ratio``. If False,
        ``C_`` and ``l1_ratio_`` are the means of each fold's best, and ``coef_`` and
        ``intercept_`` the means of the folds' models there.
    fit_intercept, tol, max_iter, solver, class_weight, n_jobs, verbose
        As in :class:`SoftmaxRegressor`, for every fit. ``n_jobs`` is the total
        number of threads: the (fold, l1_ratio) paths run in ``min(n_paths,
        threads)`` Python threads, each fit with ``threads // that`` OpenMP threads,
        so the cores are never oversubscribed. ``verbose`` prints a line per fit
        (2 and above: also the solvers' progress).

    Attributes
    ----------
    C_ : float
        The chosen C.
    l1_ratio_ : float
        The chosen ``l1_ratio``.
    Cs_ : ndarray of shape (n_Cs,)
        The values of C tried, float64.
    l1_ratios_ : ndarray of shape (n_l1_ratios,)
        The values of ``l1_ratio`` tried, float64.
    scores_ : ndarray of shape (n_folds, n_l1_ratios, n_Cs)
        The score of each fit on its fold's held-out rows, float64.
    coefs_paths_ : ndarray of shape (n_folds, n_l1_ratios, n_Cs, n_rows, n_dof)
        The coefficients of every fit: ``n_rows`` is 1 for two classes and
        ``n_classes`` otherwise, ``n_dof`` is ``n_features + 1`` with an intercept
        (last) and ``n_features`` without; float64.
    n_iter_ : ndarray of shape (n_folds, n_l1_ratios, n_Cs), int32
        Solver iterations of every fit (the refit's are not counted).
    classes_, coef_, intercept_, n_features_in_, feature_names_in_
        As in :class:`SoftmaxRegressor`, of the refitted (or averaged) model.

    Raises
    ------
    ValueError
        From ``fit``: as :meth:`SoftmaxRegressor.fit`, and where a fold's training
        rows miss a class (use fewer folds, or stratified ones).

    See Also
    --------
    sklearn.linear_model.LogisticRegressionCV : The reference implementation.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegressorCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxRegressorCV(Cs=[0.1, 1.0, 10.0], cv=3).fit(X, y)
    >>> clf.scores_.shape
    (3, 1, 3)
    >>> float(clf.C_) in (0.1, 1.0, 10.0)
    True
    """

    _parameter_constraints = {
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like"],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "refit": ["boolean"],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "lbfgs", "newton-cg", "sag", "owl-qn"})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        Cs=10,
        l1_ratios=(0.0,),
        cv=None,
        scoring="neg_log_loss",
        refit=True,
        fit_intercept=True,
        tol=1e-4,
        max_iter=100,
        solver="auto",
        class_weight=None,
        n_jobs=None,
        verbose=0,
    ):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _estimator(self, C, l1_ratio, n_jobs, verbose):
        return SoftmaxRegressor(
            C=C, l1_ratio=l1_ratio, fit_intercept=self.fit_intercept, tol=self.tol,
            max_iter=self.max_iter, solver=self.solver, warm_start=True,
            class_weight=self.class_weight, n_jobs=n_jobs, verbose=verbose,
        )

    @property
    def partial_fit(self):
        """Not available: a cross-validated choice of C needs the whole data set (as for
        ``LogisticRegressionCV``). Stream with ``SoftmaxRegressor(C=...).partial_fit``."""
        raise AttributeError(
            "SoftmaxRegressorCV has no partial_fit: cross-validation needs the whole data "
            "set. Use SoftmaxRegressor(C=...).partial_fit, with C chosen on a sample."
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the paths on every fold, choose C and ``l1_ratio``, and refit.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, as for :meth:`SoftmaxRegressor.fit` (sparse: used as CSR,
            never densified).
        y : array-like of shape (n_samples,)
            Class labels; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in every fit and in the held-out scores.

        Returns
        -------
        self : SoftmaxRegressorCV
            The fitted estimator.

        Raises
        ------
        ValueError
            As :meth:`SoftmaxRegressor.fit`; for values of ``Cs`` or ``l1_ratios``
            out of range; where a fold's training rows miss a class of y.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(
                self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                y_numeric=False,
            )
        classes = check_targets(y)
        if classes.shape[0] < 2:
            raise ValueError(
                "SoftmaxRegressorCV needs samples of at least 2 classes in the data, "
                f"but the data contain only one class: {classes[0]!r}."
            )
        sample_weight = check_sample_weight(
            sample_weight, y.shape[0], np.float64, require_positive_sum=True)
        Cs = _check_cs(self.Cs)
        l1_ratios = _check_l1_ratios(self.l1_ratios)
        if self.solver in ("lbfgs", "newton-cg", "sag") and (l1_ratios > 0).any() and (
                np.isfinite(Cs).any()):
            raise ValueError(
                f"solver={self.solver!r} fits only the L2 penalty, but l1_ratios holds "
                f"{l1_ratios[l1_ratios > 0].tolist()}: use solver='owl-qn' (or 'auto', which "
                "picks it) for the L1 and elastic-net penalties."
            )
        folds = list(check_cv(self.cv, y, classifier=True).split(X, y))
        for i, (train, _) in enumerate(folds):
            missing = np.setdiff1d(classes, y[train])
            if missing.size:
                raise ValueError(
                    f"The training rows of fold {i} have no sample of the classes "
                    f"{missing.tolist()}: every fold's model must know every class. Use "
                    "fewer folds, or stratified ones (cv=None or an int does that)."
                )
        scorer = _with_labels(self._scorer(), classes)
        tasks = [(f, r) for f in range(len(folds)) for r in range(len(l1_ratios))]
        threads = KernelThreads(self.n_jobs).limit
        workers = max(1, min(len(tasks), threads))
        order = np.argsort(Cs, kind="stable")  # the path: strongest penalty first

        def path(fold, ratio):
            train, test = folds[fold]
            model = self._estimator(Cs[order[0]], l1_ratios[ratio], max(1, threads // workers),
                                    max(0, self.verbose - 1))
            weights = sample_weight[train] if sample_weight.size else None
            score_params = {"sample_weight": sample_weight[test]} if sample_weight.size else {}
            X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]
            results = [None] * len(Cs)
            for index in order:
                model.set_params(C=Cs[index]).fit(X_train, y_train, sample_weight=weights)
                score = scorer(model, X_test, y_test, **score_params)
                results[index] = (_dof(model), score, int(model.n_iter_[0]))
                if self.verbose > 0:
                    print(f"[SoftmaxRegressorCV] fold {fold}, l1_ratio={l1_ratios[ratio]:g}, "
                          f"C={Cs[index]:g}: score {score:.6g}, {model.n_iter_[0]} iterations",
                          flush=True)
            return results

        paths = Parallel(n_jobs=workers, prefer="threads")(
            delayed(path)(fold, ratio) for fold, ratio in tasks)
        n_folds, n_ratios, n_cs = len(folds), len(l1_ratios), len(Cs)
        self.Cs_ = Cs
        self.l1_ratios_ = l1_ratios
        self.coefs_paths_ = np.array(
            [[entry[0] for entry in results] for results in paths]
        ).reshape(n_folds, n_ratios, n_cs, *np.shape(paths[0][0][0]))
        self.scores_ = np.array(
            [[entry[1] for entry in results] for results in paths], dtype=np.float64
        ).reshape(n_folds, n_ratios, n_cs)
        self.n_iter_ = np.array(
            [[entry[2] for entry in results] for results in paths], dtype=np.int32
        ).reshape(n_folds, n_ratios, n_cs)
        self.classes_ = classes
        n_features = X.shape[1]
        if self.refit:
            ratio, index = np.unravel_index(
                np.argmax(self.scores_.sum(axis=0)), (n_ratios, n_cs))
            self.C_, self.l1_ratio_ = float(Cs[index]), float(l1_ratios[ratio])
            # From zero coefficients (not, as LogisticRegressionCV, from the mean of the
            # folds' models): the model is then SoftmaxRegressor's at (C_, l1_ratio_),
            # whatever the folds, and the same for weighted rows as for repeated ones.
            model = self._estimator(self.C_, self.l1_ratio_, self.n_jobs,
                                    max(0, self.verbose - 1))
            model.set_params(warm_start=False)
            model.fit(X, y, sample_weight=sample_weight if sample_weight.size else None)
            self.coef_, self.intercept_ = model.coef_, model.intercept_
        else:
            best = np.argmax(self.scores_.reshape(n_folds, -1), axis=1)
            ratios, indices = np.unravel_index(best, (n_ratios, n_cs))
            self.C_ = float(np.mean(Cs[indices]))
            self.l1_ratio_ = float(np.mean(l1_ratios[ratios]))
            mean = np.mean(
                [self.coefs_paths_[f, ratios[f], indices[f]] for f in range(n_folds)], axis=0)
            self.coef_ = mean[:, :n_features].astype(X.dtype)
            self.intercept_ = (mean[:, n_features] if self.fit_intercept
                               else np.zeros(mean.shape[0])).astype(X.dtype)
        return self

    def _scorer(self):
        """The scorer of ``scoring`` (None: the accuracy)."""
        return check_scoring(self, scoring=self.scoring if self.scoring is not None else "accuracy")

    def score(self, X, y, sample_weight=None):
        """The ``scoring`` of the model on X and y (not the accuracy, unless
        ``scoring=None``), as ``LogisticRegressionCV.score``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Passed to the scorer where given.

        Returns
        -------
        score : float
        """
        scorer = self._scorer()
        if sample_weight is None:
            return scorer(self, X, y)
        return scorer(self, X, y, sample_weight=sample_weight)


def _with_labels(scorer, classes):
    """``scorer`` with ``labels=classes`` (and, for two classes, ``pos_label=classes[1]``)
    where its metric takes them, as ``LogisticRegressionCV`` scores its folds: the
    held-out rows of a fold may miss a class."""
    if not hasattr(scorer, "_score_func"):
        return scorer
    parameters = inspect.signature(scorer._score_func).parameters
    if "labels" not in parameters:
        return scorer
    extra = {"pos_label": classes[-1]} if len(classes) == 2 and "pos_label" in parameters else {}
    return make_scorer(
        scorer._score_func, greater_is_better=scorer._sign == 1,
        response_method=scorer._response_method, labels=classes,
        **{**getattr(scorer, "_kwargs", {}), **extra},
    )


def _dof(model):
    """A fitted model's ``[coef_, intercept_]`` (intercept last, with one), float64."""
    coef = np.asarray(model.coef_, dtype=np.float64)
    if not model.fit_intercept:
        return coef
    return np.hstack([coef, np.asarray(model.intercept_, dtype=np.float64)[:, None]])


def _check_cs(Cs):
    """``Cs_`` from the ``Cs`` parameter: a grid, or the given positive values."""
    if isinstance(Cs, Integral):
        return np.logspace(-4, 4, Cs)
    Cs = np.asarray(Cs, dtype=np.float64).ravel()
    if Cs.size == 0 or np.isnan(Cs).any() or (Cs <= 0).any():
        raise ValueError(f"Cs must be a positive int or non-empty positive values; got {Cs}.")
    return Cs


def _check_l1_ratios(l1_ratios):
    ratios = np.asarray(l1_ratios, dtype=np.float64).ravel()
    if ratios.size == 0 or not ((ratios >= 0) & (ratios <= 1)).all():
        raise ValueError(
            f"l1_ratios must be non-empty values in [0, 1]; got {np.asarray(l1_ratios)}.")
    return ratios
