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
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dispatch import kernels as _kernels
from ._objective import LinearSoftmaxObjective
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
        to one thread while the kernels run.
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
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data: finite real numbers of any magnitude. SciPy sparse
            matrices and arrays are used as CSR without densifying them (CSC, COO and
            the other formats are converted to CSR once; a CSR matrix with duplicate
            entries is copied once to sum them).
        y : array-like of shape (n_samples,)
            Class labels; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), default=None
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
            parameter is out of range.
        """
        # scikit-learn's finiteness check sums X first: values near the dtype's end
        # overflow that sum (harmlessly: it then checks element by element).
        with np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(
                self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], order="C",
                y_numeric=False,
            )
        X = _canonical(X)
        classes = _check_targets(y)
        labels = _labels(y, classes)
        if classes.shape[0] < 2:
            raise ValueError(
                "SoftmaxRegressor needs samples of at least 2 classes in the data, "
                f"but the data contain only one class: {classes[0]!r}."
            )
        l1_ratio = self._check_l1_ratio()
        n_threads = KernelThreads(self.n_jobs)
        sw, C = self._weights_and_c(sample_weight, classes, labels)
        sw = sw.astype(X.dtype)  # at most 1: X's dtype holds them
        with fitting(n_threads):
            mean, std, magnitude = column_moments(X, sw, n_threads)
            X_fit, column_exponents = scale_extreme_columns(X, magnitude)
            if column_exponents is not None:  # the moments of the scaled copy, exactly
                mean, std = np.ldexp(mean, -column_exponents), np.ldexp(std, -column_exponents)
            stored = _stored_columns(X, magnitude)
            if stored is not None:
                # Only the columns with a non-zero entry (on a row of positive weight) are
                # fitted: the others' coefficients are 0 at the optimum, and they would
                # cost the solvers d x k of work and memory for nothing on hashed or
                # one-hot data. X is read through a column map, not copied.
                X_fit = CsrRows(X_fit, stored)
                mean, std = mean[stored], std[stored]
                if column_exponents is not None:
                    column_exponents = column_exponents[stored]
            objective = LinearSoftmaxObjective(
                X_fit,
                labels,
                classes.shape[0],
                sw,
                C=C,
                fit_intercept=self.fit_intercept,
                n_threads=n_threads,
                feature_exponents=column_exponents,
                l1_ratio=l1_ratio,
            )
            standardized = StandardizedObjective(
                objective, n_threads, (mean, std, None), centred=l1_ratio == 0)
            solver = self.solver
            problem = standardized
            if solver == "owl-qn" or l1_ratio > 0:
                # The smooth part and the L1 term (``_penalty``): OWL-QN's objective.
                problem = CompositeObjective(standardized, l1_penalty(standardized))
            w0 = self._warm_start_point(problem, standardized, column_exponents, X.shape[1],
                                        stored)
            warm = w0 is not None
            if solver == "auto":
                solver = "owl-qn" if l1_ratio > 0 else _auto_solver(warm, objective)
            if solver == "sag" and penalty_curvature(objective) is None:
                raise ValueError(
                    "solver='sag' needs one finite penalty 1 / (C sum(sample_weight)) for "
                    "every feature; here "
                    + ("C is so small that the penalty lies beyond the float64 range"
                       if column_exponents is None else
                       "some columns of X have values of extreme magnitude (beyond about "
                       f"{np.finfo(X.dtype).max / 4 / X.shape[0]:.1e} or below 1e-276), which "
                       "the solvers rescale, giving those features their own penalty")
                    + ". Use solver='auto', or rescale those columns."
                )
            if self.verbose > 0:
                start = time.perf_counter()
                print(
                    f"[SoftmaxRegressor] {X.shape[0]} x {X.shape[1]} {X.dtype.name}"
                    f"{f' (sparse, {X.nnz} entries)' if sp.issparse(X) else ''}"
                    f"{f' ({len(stored)} columns with entries fitted)' if stored is not None else ''}, "
                    f"{classes.shape[0]} classes, C={self.C:g}; solver {solver}"
                    f"{' (warm start)' if warm else ''}, tol={self.tol:g}, "
                    f"max_iter={self.max_iter}; up to {n_threads.limit} OpenMP thread(s)"
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
                solver, result, self.max_iter, self.tol, X.dtype, classes.shape[0],
                unpenalized=self.C == np.inf,
            )
        coef, intercept = objective.unpack(standardized.to_model(result.w))
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
            coef, intercept = coef.astype(X.dtype), intercept.astype(X.dtype)
        if stored is not None:
            full = np.zeros((coef.shape[0], X.shape[1]), dtype=coef.dtype)
            full[:, stored] = coef
            coef = full
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            columns = ~np.isfinite(coef).all(axis=0)
            raise ValueError(
                f"The model's coefficients of {np.count_nonzero(columns)} features of X lie "
                f"beyond the range of {X.dtype.name} (those features' largest magnitude: "
                f"{magnitude[columns].min() if columns.any() else np.nan:.3g}): use a "
                f"smaller C{', float64 X' if X.dtype == np.float32 else ''}, or those "
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
            weights, C = normalize_weights(
                _class_weights(self.class_weight, classes, labels, sw), C
            )
            sw = (sw if sw.size else 1.0) * weights[labels]
            if not (sw > 0).any():
                raise ValueError(
                    "class_weight and sample_weight together give every sample weight 0: "
                    "there is nothing to fit."
                )
        if sw.size and np.unique(labels[sw > 0]).shape[0] < 2:
            raise ValueError(
                "The weights leave samples of a single class (every other class has "
                "weight 0): SoftmaxRegressor needs at least 2 classes of positive weight."
            )
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
        coef = _dense(self.coef_).astype(np.float64)
        if stored is not None:
            coef = coef[:, stored]
        if column_exponents is not None:
            coef = np.ldexp(coef, column_exponents)
        w = standardized.centre(standardized.to_solver(objective.pack(coef, self.intercept_)))
        if not np.isfinite(w).all():
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
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified).

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            In the dtype of ``coef_``. With two classes, the log-odds of
            ``classes_[1]`` against ``classes_[0]``, of shape (n_samples,), as
            ``LogisticRegression`` returns.

        Raises
        ------
        ValueError
            Where a score lies beyond the range of the dtype (X far beyond any
            training data); :meth:`predict` and :meth:`predict_proba` still work there.
        """
        logits, scaled = self._logits(X)
        if scaled is not None:
            raise self._too_large("the decision function", int(scaled[0].sum()))
        return logits[:, 0] if len(self.classes_) == 2 else logits

    def predict(self, X):
        """Predict the most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits, _ = self._class_logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X):
        """Class probabilities: the softmax of the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``; dtype of ``coef_``. With two
            classes, ``[1 - p, p]`` with ``p = sigmoid(decision_function(X))``.
        """
        return self._softmax(*self._class_logits(X), log=False)

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably as a log-softmax.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The samples (sparse: as CSR, never densified).

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
        return self._softmax(*self._class_logits(X), log=True)

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


def _dense(coef):
    """``coef_`` as an ndarray (after :meth:`~SoftmaxRegressor.sparsify`, it is sparse)."""
    return coef.toarray() if sp.issparse(coef) else coef


def _canonical(X):
    """X, or for a CSR matrix with duplicate entries, a copy with them summed (the one
    copy sparse X may get: the column moments count entries, not their sums)."""
    if sp.issparse(X) and not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def _stored_columns(X, magnitude):
    """For sparse X with columns that hold no non-zero value on a row of positive weight,
    the sorted indices of the others (at least one, so that the model keeps a column);
    None for dense X or where every column holds one."""
    if not sp.issparse(X):
        return None
    stored = np.flatnonzero(magnitude > 0)
    if stored.shape[0] == X.shape[1]:
        return None
    return stored if stored.shape[0] else np.zeros(1, dtype=np.intp)


def _check_targets(y):
    """``np.unique(y)``, after scikit-learn's check that y holds classes.

    For integer and boolean y there is nothing to check, and for float y only that
    every class is a whole number, which ``np.unique`` tells at a fraction of the cost of
    ``check_classification_targets`` (1 ms on 16,000 labels, a tenth of a small fit);
    other dtypes go through scikit-learn's check.
    """
    if y.dtype.kind not in "biuf":
        check_classification_targets(y)
        return np.unique(y)
    classes = np.unique(y)
    if y.dtype.kind == "f" and not np.array_equal(classes, np.floor(classes)):
        check_classification_targets(y)  # raises scikit-learn's "Unknown label type" error
    return classes


def _labels(y, classes):
    """The index of each label in ``classes``, as intp (y itself where it already is)."""
    n_classes = classes.shape[0]
    if y.dtype.kind in "iu" and classes[0] == 0 and classes[-1] == n_classes - 1:
        return y.astype(np.intp, copy=False)
    # Not np.unique(..., return_inverse=True): its temporaries are 5 arrays of n.
    return np.searchsorted(classes, y)


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


def _class_weights(class_weight, classes, labels, sample_weight):
    """Weight of each class (aligned with ``classes``), as ``LogisticRegression`` computes it."""
    if isinstance(class_weight, str):  # "balanced", with weighted counts
        sw = sample_weight if sample_weight.size else None
        counts = np.bincount(labels, weights=sw, minlength=classes.shape[0])
        with np.errstate(divide="ignore"):
            weights = counts.sum() / (classes.shape[0] * counts)
        return np.where(counts > 0, weights, 0.0)
    unknown = [key for key in class_weight if not np.isin(key, classes).any()]
    if unknown:
        raise ValueError(
            f"class_weight has keys {unknown} that are not classes of y; the classes are "
            f"{classes.tolist()}."
        )
    weights = np.array([class_weight.get(c, 1.0) for c in classes.tolist()], dtype=np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("class_weight values must be finite and non-negative.")
    return weights
