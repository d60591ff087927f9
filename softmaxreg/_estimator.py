"""SoftmaxRegressor: multinomial logistic regression with the scikit-learn API."""

import warnings
from numbers import Integral, Real

import time

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import SparseCoefMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dispatch import kernels as _kernels
from ._fit_data import (
    FitData, canonical, check_not_dask_dataframe, check_positive_classes, check_targets,
    check_two_classes,
    class_weights, is_dask_array, labels_of, stored_columns,
)
from ._objective import LinearSoftmaxObjective
from ._partial_fit import StreamState, fingerprint
from ._penalty import CompositeObjective, l1_penalty
from ._preconditioning import StandardizedObjective, column_moments
from ._rows import CsrRows, rows_of
from ._rescaling import normalize_weights, scale_extreme_columns, scaled_logits, softmax_of_scaled
from ._solvers import lbfgs, lbfgs_then_newton_cg, newton_cg, owlqn
from ._stochastic import penalty_curvature, sag, sag_suits
from ._threads import ROW_WISE_WORK, KernelThreads, fitting
from ._validation import check_sample_weight

_SOLVERS = {
    "lbfgs": lbfgs,
    "newton-cg": newton_cg,
    "sag": sag,
    "owl-qn": owlqn,
    "lbfgs, then newton-cg": lbfgs_then_newton_cg,  # what "auto" runs from a cold start
}


class SoftmaxRegressor(ClassifierMixin, SparseCoefMixin, BaseEstimator):
    """Multinomial logistic ("softmax") regression on multicore CPUs.

    A classifier, despite its name. It minimizes the same objective as
    scikit-learn's :class:`~sklearn.linear_model.LogisticRegression` with its
    multinomial loss and L2, L1 or elastic-net penalty::

        C * sum_i s_i * CE(softmax(x_i @ coef_.T + intercept_), y_i)
            + (1 - l1_ratio) / 2 * ||coef_||_2^2 + l1_ratio * ||coef_||_1

    where ``s_i`` is the sample weight times the class weight and the intercept is
    not penalized, so switching from ``LogisticRegression`` gives the same model.
    With two classes the model is, as there, binary logistic regression: one row of
    coefficients, ``p(classes_[1]) = sigmoid(x @ coef_[0] + intercept_[0])``.
    Its loss and gradient are computed by fused Cython kernels that run over
    blocks of rows in parallel with OpenMP and never allocate an
    (n_samples, n_classes) array during a fit.

    Parameters
    ----------
    C : float, default=1.0
        Inverse of the regularization strength; must be positive. Smaller values
        mean stronger regularization. ``np.inf`` fits the unpenalized model, as in
        ``LogisticRegression``; where the classes are separable, its coefficients
        grow without bound, and the fit stops at ``max_iter`` with a
        :class:`~sklearn.exceptions.ConvergenceWarning`. With ``C=np.inf``,
        ``l1_ratio`` is ignored (with a warning).
    fit_intercept : bool, default=True
        Whether to fit an (unpenalized) intercept for each class.
    tol : float, default=1e-4
        Stop when the largest absolute entry of the gradient of the objective F
        is at most ``tol * F``, for every solver, with the gradient taken both with
        respect to ``coef_`` and ``intercept_`` and with respect to the
        standardized coordinates the solvers move in (see ``solver``). F is the
        objective above divided by ``C * sum(sample_weight)``. This is the test of
        ``LogisticRegression(solver="lbfgs")`` divided by F, on the features as
        given and as if standardized: the same where the optimal loss is of order
        1; where it is small (nearly separable classes, large C) the gradient
        shrinks with F, and an absolute threshold stops far from the optimum.
        Where a feature's scale (or, for a tiny C, the penalty's) exceeds 1e4, its
        coefficients are measured in the first test as if scaled down to 1e4, where
        float64 can still meet it. A solver that stops
        before meeting the test for any reason says so with a
        :class:`~sklearn.exceptions.ConvergenceWarning`. With ``l1_ratio > 0`` the
        objective is not differentiable where a coefficient is 0, and the gradient
        in this test is the minimum-norm subgradient (0 exactly at the optimum).
    max_iter : int, default=100
        Maximum number of solver iterations, for every solver: with ``"auto"``,
        L-BFGS and newton-cg share it. ``n_iter_[0] <= max_iter``, and a larger
        ``max_iter`` continues the same sequence of iterates, so it never gives a
        worse model. 0 returns the start (zeros, or the warm start). A
        :class:`~sklearn.exceptions.ConvergenceWarning` is issued when it is
        reached before ``tol``.
    solver : {"auto", "lbfgs", "newton-cg", "sag", "owl-qn"}, default="auto"
        The optimization algorithm. Every solver moves in coordinates where the
        features look standardized: an exact change of variables by each
        feature's weighted mean and standard deviation (X is neither copied nor
        changed), so raw, unscaled features do not slow it down and the model is
        the same as without it. Features that do not vary keep coefficients of
        exactly 0 (the intercept absorbs a constant).

        - ``"lbfgs"``: L-BFGS (Nocedal 1980) with ``LogisticRegression``'s settings
          (10 pairs, a strong Wolfe line search); one pass over X per iteration.
          The fastest on well-conditioned problems. Where it stalls before meeting
          ``tol``, it warns.
        - ``"newton-cg"``: trust-region Newton (TRON: Lin, Weng & Keerthi, JMLR
          2008). Each iteration minimizes the quadratic model of the objective
          inside a trust region by conjugate gradients on Hessian-vector products
          (one fused pass over X each). Few, costlier iterations; it converges
          where L-BFGS crawls (nearly separable classes under a weak penalty),
          quickly from a warm start, and from any start.
        - ``"sag"``: stochastic average gradient (Schmidt, Le Roux & Bach, Math.
          Program. 2017), one epoch over the rows per iteration, serial, in the
          model's coordinates (sparse rows stay sparse), with rows drawn at random
          from a fixed seed. Fast on many normalized sparse rows (TF-IDF text);
          slow where rows are long or unscaled (its step is 1 / the largest row's
          curvature). Not for X with columns of extreme magnitude (a ValueError).
        - ``"owl-qn"``: orthant-wise limited-memory quasi-Newton (Andrew & Gao,
          ICML 2007; Spark MLlib's solver for L1), the solver for ``l1_ratio > 0``:
          L-BFGS on the minimum-norm subgradient, each step kept within the
          orthant of the current coefficients, so coefficients reach exact zeros.
          One pass over X per line-search trial. It also fits ``l1_ratio=0``.
          ``"lbfgs"``, ``"newton-cg"`` and ``"sag"`` handle only ``l1_ratio=0``
          (a ValueError otherwise).
        - ``"auto"``: ``"owl-qn"`` when ``l1_ratio > 0`` (and C is finite);
          otherwise ``"newton-cg"`` when warm-starting from a previous
          solution; ``"sag"`` for sparse X whose rows' largest curvature times C
          is at most 2 (normalized rows, as TF-IDF's); otherwise ``"lbfgs"``,
          handing over to ``"newton-cg"`` from where it stopped when it stalls or
          when, after 30 iterations, its rate of progress projects more than 60
          further iterations to reach ``tol``. benchmarks/ measures the choice.
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` when their shape fits,
        for example along a path of values of C (``set_params(C=c).fit(X, y)``);
        ``"auto"`` then runs newton-cg. A previous model that fits the data worse than
        zero coefficients (its objective is above ``log(n_classes)``, the value at
        zero) is no help, and the fit starts from zero as without ``warm_start``.
    class_weight : dict or "balanced", default=None
        Weights of the classes, ``{class_label: weight}``; they multiply the sample
        weights. ``"balanced"`` uses ``n_samples / (n_classes * bincount(y))``, with
        the counts weighted by ``sample_weight``. None gives every class weight 1.
    n_jobs : int, default=None
        Number of OpenMP threads for fitting and prediction. None uses
        ``omp_get_max_threads()``, which honours ``OMP_NUM_THREADS`` and
        :func:`threadpoolctl.threadpool_limits`; -1 uses every CPU; -2 all but
        one. Never more threads than CPUs this process may run on. BLAS is limited
        to one thread while the kernels run. For a Dask X: the threads of each
        chunk's kernel on its worker; None shares the cluster's threads among the
        groups of chunks, at most a worker's own threads.
    verbose : int, default=0
        If positive, print a header (data shape, classes, threads, solver, tol), the
        objective and the optimality at every solver iteration, a line where
        ``"auto"`` hands over to newton-cg, and a closing line (converged or why not,
        iterations, seconds). From 2, also the progress of newton-cg's conjugate
        gradients within a step (every 10 Hessian products, or every second).
    l1_ratio : float, default=0.0
        The elastic-net mixing parameter, in [0, 1], as in ``LogisticRegression``:
        0 is the L2 penalty, 1 the L1 penalty (``||coef_||_1``, which sets
        coefficients to exactly 0: feature selection), in between their mix (see
        the objective above). With more than two classes, every class's
        coefficients are penalized, and with ``l1_ratio > 0`` they are no longer
        centred over the classes. Ignored, with a warning, when ``C=np.inf``. On raw,
        unscaled features the L1 solver takes more iterations than the L2 ones: raise
        ``max_iter`` where the default 100 stops it with a ConvergenceWarning.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients of the features in the decision function, in the dtype of X
        (float32 or float64). With two classes, one row: that of ``classes_[1]``
        against ``classes_[0]``, as in ``LogisticRegression``. With more, one row
        per class, centred over the classes, as the optimum's are (for ``C=np.inf``,
        the smallest of the equivalent solutions), where ``l1_ratio=0``. With
        ``l1_ratio > 0``, with exact zeros; :meth:`sparsify` turns it into a SciPy
        CSR matrix (and :meth:`densify` back), which predictions accept.
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts, in the dtype of X. With more than two classes, centred to sum
        to zero (softmax is unchanged by a shift). Zero when ``fit_intercept=False``.
    n_iter_ : ndarray of shape (1,), int32
        Number of solver iterations of the last fit (with ``"auto"``, of both
        solvers), as in ``LogisticRegression``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during fit, when X has string column names.
    n_samples_seen_ : int
        After :meth:`partial_fit`: the rows passed to it since its stream began
        (repeated chunks included).

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The reference implementation of
        the same model.
    softmaxreg.softmax_cross_entropy : The loss and gradient kernel, on logits.

    Notes
    -----
    X is used as C-contiguous float32 or float64; float32 data stays float32, and
    other layouts or dtypes are copied once. Labels can be of any kind that
    scikit-learn accepts for classification.

    Examples
    --------
    Raw features need no scaler (the solvers standardize them internally):

    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegressor
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxRegressor(C=10.0).fit(X, y)
    >>> clf.predict(X[:3])
    array([0, 0, 0])
    >>> clf.predict_proba(X[:1]).round(3)
    array([[0.997, 0.003, 0.   ]])
    >>> round(clf.score(X, y), 3)
    0.98
    """

    _parameter_constraints = {
        "C": [Interval(Real, 0, None, closed="right")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "lbfgs", "newton-cg", "sag", "owl-qn"})],
        "warm_start": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        C=1.0,
        fit_intercept=True,
        tol=1e-4,
        max_iter=100,
        solver="auto",
        warm_start=False,
        class_weight=None,
        n_jobs=None,
        verbose=0,
        l1_ratio=0.0,
    ):
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.l1_ratio = l1_ratio

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask.array.Array} of shape (n_samples, n_features)
            Training data: finite real numbers of any magnitude. SciPy sparse
            matrices and arrays are used as CSR without densifying them (CSC, COO and
            the other formats are converted to CSR once; a CSR matrix with duplicate
            entries is copied once to sum them). A Dask array chunked by rows only
            (NumPy or SciPy sparse chunks) is fitted where its chunks live, on the
            current ``distributed.Client`` (Dask's local threads without one): the
            solver runs here and each evaluation maps the kernels over the chunks
            and sums the results by a tree (``softmaxreg/_dask_rows.py``); the model
            is the in-memory fit of the same data. Needs ``softmaxreg[dask]``.
        y : array-like or dask.array.Array of shape (n_samples,)
            Class labels; at least two distinct classes. With Dask X, rechunked like
            X's rows where chunked otherwise.
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Non-negative, finite weight of each sample, with a positive sum. None
            gives every sample weight 1. Only their ratios and ``C`` matter:
            scaling every weight by ``c`` fits the same model as ``C * c``.

        Returns
        -------
        self : SoftmaxRegressor
            The fitted estimator.

        Raises
        ------
        ValueError
            If X or sample_weight hold NaN, infinity or (sample_weight) negative
            values, if y has a single class, if the lengths differ, or if a
            parameter is out of range; for Dask X, also if it is chunked along its
            columns or has chunks of unknown size, or with ``solver="sag"``.
        """
        self.__dict__.pop("_stream", None)  # a fit ends any partial_fit stream
        check_not_dask_dataframe(X)
        if is_dask_array(X):
            from ._dask_data import prepare_dask_fit  # Dask only where a Dask array arrives

            data = prepare_dask_fit(self, X, y, sample_weight)
        else:
            data = self._prepare_fit(X, y, sample_weight)
        return self._fit_prepared(data)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Update the model with one chunk of a data set (out-of-core or streaming fits).

        Calls over the chunks of a data set, repeated for a few passes, converge to the
        model that :meth:`fit` gives on the whole data set: each call solves the
        objective with the chunk's data term exact and every other chunk's replaced by
        a quadratic model kept from when that chunk was last seen (the incremental
        majorization-minimization method MISO: Mairal, SIAM J. Optim. 25, 2015; see
        ``softmaxreg/_partial_fit.py`` for the algorithm and why). The penalty is
        scaled for the samples seen: those of the distinct chunks so far (a chunk
        seen again, with the same rows, labels and weights, counts once), so the model
        after one pass is about ``fit``'s on the chunks seen, with its ``C``. Passes
        converge linearly, at a rate that depends on the data (fast where the chunks
        are alike and well conditioned). The model is multinomial, with every class in
        every call (unlike the one-vs-rest ``SGDClassifier.partial_fit``); a chunk may
        hold any subset of the classes. After :meth:`fit`, ``partial_fit`` starts a
        new stream from the fitted model (the rows ``fit`` saw are not part of it);
        :meth:`fit` ends a stream. A first call that fails leaves the estimator
        unfitted.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or dask.array.Array
            One chunk of rows (finite, float32 or float64 kept, sparse used as CSR).
            A Dask array is one pass over its chunks, in order: each chunk is
            computed and passed to ``partial_fit`` in turn.
        y : array-like or dask.array.Array of shape (n_samples,)
            Labels, each one of ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole data set: required on the first call (at least
            2), and, where given later, the same as then (as in ``SGDClassifier``).
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Non-negative weights of the chunk's samples; None gives each weight 1. A
            chunk whose weights are all 0 changes nothing (a ValueError on the first
            call).

        Returns
        -------
        self : SoftmaxRegressor

        Raises
        ------
        ValueError
            If ``classes`` is missing on the first call or differs from the first
            call's, if y holds a label that is not in ``classes``, if the number of
            features changes, for ``class_weight="balanced"`` (the class frequencies
            of a stream are unknown), and for the input errors of :meth:`fit`.

        Notes
        -----
        Each call runs ``solver``, with ``"auto"`` (and ``"sag"``, whose loop cannot
        take the proximal term) as newton-cg from the previous model, or owl-qn where
        ``l1_ratio > 0``; ``tol`` and ``max_iter`` apply to each call's problem.
        """
        check_not_dask_dataframe(X)
        if is_dask_array(X):
            return self._partial_fit_dask(X, y, classes, sample_weight)
        return self._partial_fit(X, y, classes, sample_weight)

    def _partial_fit_dask(self, X, y, classes, sample_weight):
        """One pass of ``partial_fit`` over the chunks of a Dask array, in order."""
        from ._dask_data import blocks_of

        for x, y_block, w_block in blocks_of(X, y, sample_weight):
            self._partial_fit(x, y_block, classes, w_block)
            classes = None
        return self

    def _first_partial_fit_call(self, classes):
        """Whether this call starts a stream (``classes`` given, the model has none yet);
        sets ``classes_`` then. Errors as ``SGDClassifier.partial_fit`` raises them."""
        if classes is None:
            if not hasattr(self, "classes_"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            return False
        classes = check_targets(np.asarray(classes))
        if hasattr(self, "classes_"):
            if not np.array_equal(self.classes_, classes):
                raise ValueError(
                    f"classes={classes.tolist()} is not the same as the model's classes_, "
                    f"{self.classes_.tolist()} (from the first call to partial_fit, or from "
                    "fit)."
                )
            return False
        self.classes_ = classes
        return True

    def _partial_fit(self, X, y, classes, sample_weight):
        first = self._first_partial_fit_call(classes)
        if not first:
            return self._partial_fit_chunk(X, y, sample_weight, first)
        try:
            return self._partial_fit_chunk(X, y, sample_weight, first)
        except BaseException:
            # A first call that fails leaves the estimator unfitted, as it found it.
            for name in ("classes_", "coef_", "intercept_", "n_iter_", "n_samples_seen_",
                         "n_features_in_", "feature_names_in_", "_stream"):
                self.__dict__.pop(name, None)
            raise

    def _partial_fit_chunk(self, X, y, sample_weight, first):
        if first or not hasattr(self, "_stream"):
            self._stream = StreamState()
            self.n_samples_seen_ = 0
        if first:
            self.__dict__.pop("coef_", None)
            self.__dict__.pop("intercept_", None)
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class "
                "frequencies of the whole data set are not known from one chunk. Pass them "
                "as a dict, class_weight={label: weight}, or use fit."
            )
        with np.errstate(over="ignore", invalid="ignore"):  # as in fit
            X, y = validate_data(
                self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                reset=first,
            )
        X = canonical(X)
        classes = self.classes_
        check_two_classes(classes)
        unseen = np.setdiff1d(check_targets(y), classes)
        if unseen.size:
            raise ValueError(
                f"y has labels {unseen.tolist()} that are not in classes "
                f"{classes.tolist()} (given on the first call to partial_fit)."
            )
        labels = labels_of(y, classes)
        raw = check_sample_weight(sample_weight, labels.shape[0], np.float64,
                                  require_positive_sum=False)
        if self.class_weight is not None:
            raw = (raw if raw.size else 1.0) * class_weights(self.class_weight, classes, None)[labels]
        weight = float(raw.sum()) if raw.size else float(labels.shape[0])
        if not weight > 0 and first:
            raise ValueError(
                "sample_weight (times class_weight) is zero for every sample of the first "
                "chunk given to partial_fit: there is nothing to start from."
            )
        self.n_samples_seen_ += labels.shape[0]
        if not weight > 0:
            return self  # a chunk of weight 0 changes nothing
        sw, C = normalize_weights(raw, float(self.C))  # as fit scales them
        sw = sw.astype(X.dtype)
        n_threads = KernelThreads(self.n_jobs)
        with fitting(n_threads):
            moments = column_moments(X, sw, n_threads)
        self._stream.begin(fingerprint(X, labels, raw), weight, moments)
        mean, std, _ = self._stream.moments
        magnitude = moments[2]
        X_fit, column_exponents = scale_extreme_columns(X, magnitude)
        if column_exponents is not None:
            mean, std = np.ldexp(mean, -column_exponents), np.ldexp(std, -column_exponents)
        data = FitData(
            rows=X_fit, labels=labels, sample_weight=sw,
            weight_sum=float(sw.sum()) if sw.size else float(X.shape[0]),
            classes=classes, C=C, mean=mean, std=std, magnitude=magnitude,
            column_exponents=column_exponents, stored=None, n_features=X.shape[1],
            dtype=X.dtype,
            description=f"partial_fit chunk {X.shape[0]} x {X.shape[1]} {X.dtype.name}",
            all_classes=np.unique(labels[sw > 0] if sw.size else labels).shape[0]
            == classes.shape[0],
        )
        return self._fit_prepared(data, stream=self._stream)

    def _prepare_fit(self, X, y, sample_weight):
        """The ``FitData`` of in-memory X (validated as the class docstring says)."""
        # scikit-learn's finiteness check sums X first: values near the dtype's end
        # overflow that sum (harmlessly: it then checks element by element).
        with np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(
                self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                y_numeric=False,
            )
        X = canonical(X)
        classes = check_targets(y)
        check_two_classes(classes)
        labels = labels_of(y, classes)
        sw, C = self._weights_and_c(sample_weight, classes, labels)
        sw = sw.astype(X.dtype)  # at most 1: X's dtype holds them
        n_threads = KernelThreads(self.n_jobs)
        with fitting(n_threads):
            mean, std, magnitude = column_moments(X, sw, n_threads)
        X_fit, column_exponents = scale_extreme_columns(X, magnitude)
        if column_exponents is not None:  # the moments of the scaled copy, exactly
            mean, std = np.ldexp(mean, -column_exponents), np.ldexp(std, -column_exponents)
        stored = stored_columns(sp.issparse(X), magnitude)
        if stored is not None:
            # Only the columns with a non-zero entry (on a row of positive weight) are
            # fitted: the others' coefficients are 0 at the optimum, and they would
            # cost the solvers d x k of work and memory for nothing on hashed or
            # one-hot data. X is read through a column map, not copied.
            X_fit = CsrRows(X_fit, stored)
            mean, std = mean[stored], std[stored]
            if column_exponents is not None:
                column_exponents = column_exponents[stored]
        description = (
            f"{X.shape[0]} x {X.shape[1]} {X.dtype.name}"
            f"{f' (sparse, {X.nnz} entries)' if sp.issparse(X) else ''}"
            f"{f' ({len(stored)} columns with entries fitted)' if stored is not None else ''}"
        )
        return FitData(
            rows=X_fit, labels=labels, sample_weight=sw,
            weight_sum=float(sw.sum()) if sw.size else float(X.shape[0]),
            classes=classes, C=C, mean=mean, std=std, magnitude=magnitude,
            column_exponents=column_exponents,
            stored=stored, n_features=X.shape[1], dtype=X.dtype, description=description,
        )

    def _fit_prepared(self, data, stream=None):
        """Fit the model to prepared data (``_fit_data.FitData``): the objective, its
        standardized coordinates, the penalty, the solver, and the model back.

        ``stream``: for ``partial_fit``, its ``_partial_fit.StreamState``, which adds the
        other chunks' models to the objective; the solver starts from the current
        model (where there is one)."""
        classes, stored, column_exponents = data.classes, data.stored, data.column_exponents
        l1_ratio = self._check_l1_ratio()
        n_threads = KernelThreads(self.n_jobs)
        with fitting(n_threads):
            objective = LinearSoftmaxObjective(
                data.rows,
                data.labels,
                classes.shape[0],
                data.sample_weight,
                C=data.C,
                fit_intercept=self.fit_intercept,
                n_threads=n_threads,
                feature_exponents=column_exponents,
                l1_ratio=l1_ratio,
                weight_sum=data.weight_sum,
            )
            standardized = StandardizedObjective(
                objective, n_threads, (data.mean, data.std, None), centred=l1_ratio == 0)
            solver = self.solver
            smooth = standardized
            if stream is not None:
                if solver == "sag":
                    solver = "auto"  # SAG's loop has no term for the other chunks' models
                w0 = None
                if hasattr(self, "coef_") and self.coef_.shape[1] == data.n_features:
                    w0 = _start_point(standardized, column_exponents, stored, self.coef_,
                                      self.intercept_)
                smooth = stream.problem(standardized, column_exponents, w0,
                                        all_classes=data.all_classes)
            problem = smooth
            if solver == "owl-qn" or l1_ratio > 0:
                # The smooth part and the L1 term (``_penalty``): OWL-QN's objective.
                problem = CompositeObjective(smooth, l1_penalty(standardized))
            if stream is None:
                w0 = self._warm_start_point(problem, standardized, column_exponents,
                                            data.n_features, stored)
            warm = w0 is not None
            if solver == "auto":
                solver = "owl-qn" if l1_ratio > 0 else _auto_solver(warm, objective)
            if solver == "sag" and not objective.rows.in_memory:
                raise ValueError(
                    "solver='sag' runs serially over the rows of in-memory X; for Dask "
                    "arrays use 'auto', 'lbfgs', 'newton-cg' or 'owl-qn'."
                )
            if solver == "sag" and penalty_curvature(objective) is None:
                raise ValueError(
                    "solver='sag' needs one finite penalty 1 / (C sum(sample_weight)) for "
                    "every feature; here "
                    + ("C is so small that the penalty lies beyond the float64 range"
                       if column_exponents is None else
                       "some columns of X have values of extreme magnitude (beyond about "
                       f"{np.finfo(data.dtype).max / 4 / objective.rows.shape[0]:.1e} or "
                       "below 1e-276), which the solvers rescale, giving those features "
                       "their own penalty")
                    + ". Use solver='auto', or rescale those columns."
                )
            if self.verbose > 0:
                start = time.perf_counter()
                print(
                    f"[SoftmaxRegressor] {data.description}, "
                    f"{classes.shape[0]} classes, C={self.C:g}; solver {solver}"
                    f"{' (warm start)' if warm else ''}, tol={self.tol:g}, "
                    f"max_iter={self.max_iter}; up to {n_threads.limit} OpenMP thread(s)"
                    f"{' for the solver here' if not objective.rows.in_memory else ''}"
                    f"{' (fewer for small calls or a busy machine)' if n_threads.adaptive else ''}",
                    flush=True,
                )
            result = _SOLVERS[solver](
                problem,
                w0 if warm else np.zeros(objective.n_params),
                tol=self.tol,
                max_iter=self.max_iter,
                verbose=self.verbose,
                warm_start=warm,
            )
        if self.verbose > 0:
            print(
                f"[SoftmaxRegressor] {'converged' if result.converged else 'did not converge'}"
                f" after {result.n_iter} iterations in {time.perf_counter() - start:.3f} s: "
                f"{result.message}; objective {result.objective:.12e}",
                flush=True,
            )
        if not result.converged:
            _warn_not_converged(
                solver, result, self.max_iter, self.tol, data.dtype, classes.shape[0],
                unpenalized=self.C == np.inf,
            )
        w_model = standardized.to_model(result.w)
        if stream is not None:
            stream.record(standardized, result.w, w_model, column_exponents)
        coef, intercept = objective.unpack(w_model)
        if objective.n_columns > 1:
            # softmax is unchanged by a shift common to every class: the optimum's
            # coefficients are centred (for C = inf, the smallest optimum), the solvers move
            # among centred ones, and this removes the rounding of the map back. The L1
            # term is not invariant to such a shift of the coefficients (only of the
            # intercepts): its optimum is not centred, and keeps its zeros.
            intercept -= intercept.mean()
            if l1_ratio == 0:
                coef -= coef.mean(axis=0)
        with np.errstate(over="ignore"):
            if column_exponents is not None:
                coef = np.ldexp(coef, -column_exponents)
            coef, intercept = coef.astype(data.dtype), intercept.astype(data.dtype)
        if stored is not None:
            full = np.zeros((coef.shape[0], data.n_features), dtype=coef.dtype)
            full[:, stored] = coef
            coef = full
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            columns = ~np.isfinite(coef).all(axis=0)
            raise ValueError(
                f"The model's coefficients of {np.count_nonzero(columns)} features of X lie "
                f"beyond the range of {data.dtype.name} (those features' largest magnitude: "
                f"{data.magnitude[columns].min() if columns.any() else np.nan:.3g}): use a "
                f"smaller C{', float64 X' if data.dtype == np.float32 else ''}, or those "
                "features scaled up."
            )
        self.classes_ = classes
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_iter_ = np.array([result.n_iter], dtype=np.int32)
        return self

    def _weights_and_c(self, sample_weight, classes, labels):
        """The sample weights times the class weights, scaled by powers of two to at most
        1 (float64; empty for unit weights), and C scaled the other way."""
        sw = check_sample_weight(
            sample_weight, labels.shape[0], np.float64, require_positive_sum=True
        )
        sw, C = normalize_weights(sw, float(self.C))
        if self.class_weight is not None:
            counts = np.bincount(labels, weights=sw if sw.size else None,
                                 minlength=classes.shape[0])
            weights, C = normalize_weights(class_weights(self.class_weight, classes, counts), C)
            sw = (sw if sw.size else 1.0) * weights[labels]
        if sw.size:
            check_positive_classes(np.bincount(labels[sw > 0], minlength=classes.shape[0]) > 0)
        return sw, C

    def _check_l1_ratio(self):
        """The L1 ratio of the objective: ``l1_ratio``, or 0 for ``C=np.inf`` (with a
        warning); a ValueError where the solver cannot fit an L1 term."""
        if self.l1_ratio > 0 and self.C == np.inf:
            warnings.warn(
                f"l1_ratio={self.l1_ratio:g} is ignored with C=np.inf: there is no penalty "
                "(as in LogisticRegression).",
                UserWarning,
                stacklevel=3,
            )
            return 0.0
        if self.l1_ratio > 0 and self.solver in ("lbfgs", "newton-cg", "sag"):
            raise ValueError(
                f"solver={self.solver!r} fits only the L2 penalty (l1_ratio=0), but "
                f"l1_ratio={self.l1_ratio:g}: use solver='owl-qn' (or 'auto', which picks it) "
                "for the L1 and elastic-net penalties."
            )
        return float(self.l1_ratio)

    def _warm_start_point(self, problem, standardized, column_exponents, n_features, stored):
        """The previous model in the solvers' coordinates, or None for a cold start: without
        warm_start, a previous model of another shape, or one that fits worse than zero
        coefficients (F = log k there), which carries no information, only distance.
        ``problem``: what the solver minimizes (``standardized``, or it plus an L1 term);
        ``stored``: the columns fitted (None: all)."""
        objective = standardized.objective
        if not (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == (objective.n_columns, n_features)
        ):
            return None
        w = _start_point(standardized, column_exponents, stored, self.coef_, self.intercept_)
        if w is None:
            return None
        value = problem.loss_gradient(w)[0]
        if problem is not standardized:
            value = problem.value(w, value)
        return w if value <= np.log(objective.n_classes) else None

    def _logits(self, X):
        """The (n_samples, n_columns) logits, and None, or, where the logits of some rows
        overflow, those rows' logits scaled down and ``(rows, exponent)``: a boolean
        mask of the rows and the power of two their logits are scaled by.

        Computed in parallel without BLAS; rows that overflow are recomputed from the
        row and the coefficients scaled down (``_rescaling.scaled_logits``).
        """
        check_is_fitted(self)
        check_not_dask_dataframe(X)
        with np.errstate(over="ignore", invalid="ignore"):  # as in fit
            X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                              order="C", reset=False)
        dtype = X.dtype
        coef = _dense(self.coef_)
        coef_t = np.ascontiguousarray(coef.T, dtype=dtype)
        intercept = np.ascontiguousarray(self.intercept_, dtype=dtype)
        out = np.empty((X.shape[0], coef_t.shape[1]), dtype=dtype)
        storage = rows_of(X)
        storage.logits(coef_t, intercept, out,
                       KernelThreads(self.n_jobs)(storage.work_per_class * out.shape[1]))
        rows = ~np.isfinite(out).all(axis=1)
        if not rows.any():
            return out, None
        X_rows = X[rows].toarray() if sp.issparse(X) else X[rows]
        z, exponent = scaled_logits(X_rows, coef, self.intercept_)
        out[rows] = z  # |z| <= n_features + 1: in range in either dtype
        return out, (rows, exponent)

    def _class_logits(self, X):
        """Logits of every class ((n, 2) for the binary model: class 0's logit is 0)."""
        logits, scaled = self._logits(X)
        if len(self.classes_) == 2:
            logits = np.hstack([np.zeros_like(logits), logits])
        return logits, scaled

    def _too_large(self, what, n_rows):
        return ValueError(
            f"X has values so large that {what} of {n_rows} of its rows lie beyond the "
            f"range of {self.coef_.dtype.name}: scale those features down (predict and "
            "predict_proba still work there)."
        )

    def decision_function(self, X):
        """Confidence scores: the logits ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask.array.Array} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified). For a Dask array, the
            result is a Dask array, computed chunk by chunk when asked.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            In the dtype of X (float32 stays float32; other dtypes give float64). With two classes, the log-odds of
            ``classes_[1]`` against ``classes_[0]``, of shape (n_samples,), as
            ``LogisticRegression`` returns.

        Raises
        ------
        ValueError
            Where a score lies beyond the range of the dtype (X far beyond any
            training data); :meth:`predict` and :meth:`predict_proba` still work there.
        """
        if is_dask_array(X):
            return self._map_dask(X, "decision_function")
        logits, scaled = self._logits(X)
        if scaled is not None:
            raise self._too_large("the decision function", int(scaled[0].sum()))
        return logits[:, 0] if len(self.classes_) == 2 else logits

    def predict(self, X):
        """Predict the most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask.array.Array} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified). For a Dask array, the
            result is a Dask array, computed chunk by chunk when asked.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        if is_dask_array(X):
            return self._map_dask(X, "predict")
        logits, _ = self._class_logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X):
        """Class probabilities: the softmax of the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask.array.Array} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified). For a Dask array, the
            result is a Dask array, computed chunk by chunk when asked.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``; dtype of ``coef_``. With two
            classes, ``[1 - p, p]`` with ``p = sigmoid(decision_function(X))``.
        """
        if is_dask_array(X):
            return self._map_dask(X, "predict_proba")
        return self._softmax(*self._class_logits(X), log=False)

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably as a log-softmax.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask.array.Array} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified). For a Dask array, the
            result is a Dask array, computed chunk by chunk when asked.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Finite, even where :meth:`predict_proba` rounds to 0; dtype of ``coef_``.

        Raises
        ------
        ValueError
            Where a log-probability lies below the range of the dtype (X far beyond
            any training data).
        """
        if is_dask_array(X):
            return self._map_dask(X, "predict_log_proba")
        return self._softmax(*self._class_logits(X), log=True)

    def _map_dask(self, X, method):
        """``method`` of a Dask array X: a Dask array, computed lazily chunk by chunk."""
        check_is_fitted(self)
        from ._dask_data import map_prediction

        return map_prediction(self, X, method)

    def _softmax(self, logits, scaled, log):
        """softmax or log_softmax of the logits from ``_class_logits``, in coef_'s dtype."""
        kernel = _kernels.log_softmax_rows if log else _kernels.softmax_rows
        out = np.ascontiguousarray(logits, dtype=self.coef_.dtype)
        kernel(out, out, KernelThreads(self.n_jobs)(ROW_WISE_WORK * out.size))
        if scaled is not None:
            rows, exponent = scaled
            with np.errstate(over="ignore"):  # a log-probability below float32's range: -inf
                out[rows] = softmax_of_scaled(logits[rows].astype(np.float64), exponent, log)
            if log and not np.isfinite(out).all():
                raise self._too_large(
                    "the log-probabilities", int((~np.isfinite(out).all(axis=1)).sum())
                )
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _start_point(standardized, column_exponents, stored, coef, intercept):
    """A model ``(coef, intercept)`` in the solvers' coordinates (None where not finite
    there); ``stored``: the columns fitted (None: all)."""
    objective = standardized.objective
    coef = _dense(coef).astype(np.float64)
    if stored is not None:
        coef = coef[:, stored]
    if column_exponents is not None:
        coef = np.ldexp(coef, column_exponents)
    w = standardized.centre(standardized.to_solver(objective.pack(coef, intercept)))
    return w if np.isfinite(w).all() else None


def _dense(coef):
    """``coef_`` as an ndarray (after :meth:`~SoftmaxRegressor.sparsify`, it is sparse)."""
    return coef.toarray() if sp.issparse(coef) else coef


def _auto_solver(warm, objective):
    """The solver that ``solver="auto"`` runs: see the class docstring."""
    if warm:
        return "newton-cg"
    return "sag" if sag_suits(objective) else "lbfgs, then newton-cg"


def _warn_not_converged(solver, result, max_iter, tol, dtype, n_classes, unpenalized=False):
    """A ConvergenceWarning that says why the solver stopped and what to do
    (``unpenalized``: C is infinite)."""
    if result.reached_max_iter and result.objective < 1e-3 * np.log(n_classes):
        # F at W = 0 is log(k): a loss this far below it means a penalty too weak to
        # hold coefficients that separate the classes.
        advice = (
            f"The objective fell to {result.objective / np.log(n_classes):.1e} of its value "
            "at zero coefficients: the classes are (nearly) separable, and the coefficients "
            "grow without bound as C grows. A smaller C gives a finite optimum; or "
            "increase max_iter, or tol."
        )
    elif result.reached_max_iter and unpenalized:
        advice = (
            "With C=np.inf there is no penalty: where the classes are (nearly) separable "
            "there is no finite optimum, and the coefficients grow without bound; a finite "
            "C gives one. Otherwise, increase max_iter, or tol."
        )
    elif result.reached_max_iter:
        advice = "Increase max_iter, or tol."
    elif solver == "lbfgs":
        advice = (
            "solver='auto' or 'newton-cg' would continue from there; or increase tol."
        )
    else:
        advice = (
            f"tol={tol:g} may be below what {np.dtype(dtype).name} arithmetic can "
            "resolve here; increase tol."
        )
    warnings.warn(
        f"SoftmaxRegressor ({solver}) did not converge after {result.n_iter} iterations "
        f"(max_iter={max_iter}; solver: {result.message.strip(' .:')}). {advice}",
        ConvergenceWarning,
        stacklevel=4,  # the caller of fit, past fit and _fit_context's wrapper
    )


