"""SoftmaxRegressor: multinomial logistic regression with the scikit-learn API."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dispatch import kernels as _kernels, linear_kernels
from ._objective import LinearSoftmaxObjective
from ._preconditioning import StandardizedObjective
from ._solvers import lbfgs, lbfgs_then_newton_cg, newton_cg
from ._threads import n_threads_from_n_jobs, single_threaded_blas
from ._validation import check_sample_weight

_SOLVERS = {
    "lbfgs": lbfgs,
    "newton-cg": newton_cg,
    "lbfgs, then newton-cg": lbfgs_then_newton_cg,  # what "auto" runs from a cold start
}


class SoftmaxRegressor(ClassifierMixin, BaseEstimator):
    """Multinomial logistic ("softmax") regression on multicore CPUs.

    A classifier, despite its name. It minimizes the same objective as
    scikit-learn's :class:`~sklearn.linear_model.LogisticRegression` with its
    multinomial loss and L2 penalty::

        C * sum_i s_i * CE(softmax(x_i @ coef_.T + intercept_), y_i) + ||coef_||^2 / 2

    where ``s_i`` is the sample weight times the class weight and the intercept is
    not penalized, so switching from ``LogisticRegression`` gives the same model.
    Its loss and gradient are computed by fused Cython kernels that run over
    blocks of rows in parallel with OpenMP and never allocate an
    (n_samples, n_classes) array during a fit.

    Parameters
    ----------
    C : float, default=1.0
        Inverse of the regularization strength; must be positive. Smaller values
        mean stronger regularization.
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
    max_iter : int, default=100
        Maximum number of solver iterations (Newton iterations for
        ``"newton-cg"``; with ``"auto"``, L-BFGS and newton-cg each get
        ``max_iter``). A :class:`~sklearn.exceptions.ConvergenceWarning` is
        issued when it is reached.
    solver : {"auto", "lbfgs", "newton-cg"}, default="auto"
        The optimization algorithm. Every solver moves in coordinates where the
        features look standardized: an exact change of variables by each
        feature's weighted mean and standard deviation (X is neither copied nor
        changed), so raw, unscaled features do not slow it down and the model is
        the same as without it.

        - ``"lbfgs"``: scipy's L-BFGS-B with ``LogisticRegression``'s settings;
          one pass over X per iteration. The fastest on well-conditioned problems.
        - ``"newton-cg"``: truncated Newton. Each iteration solves the Newton
          system by conjugate gradients on Hessian-vector products (one fused
          pass over X each), then takes the longest step with Armijo's
          sufficient decrease. Few, costlier iterations; it converges where
          L-BFGS crawls (nearly separable classes under a weak penalty) and
          quickly from a warm start.
        - ``"auto"``: ``"newton-cg"`` when warm-starting from a previous
          solution; otherwise ``"lbfgs"``, and if that has not converged after
          ``max_iter`` iterations, ``"newton-cg"`` from where it stopped. In
          benchmarks/, at the default tol, L-BFGS converged within 15 to 64
          iterations on every well-conditioned problem and was up to 1.8x faster
          than newton-cg; on raw digits it had not converged after 100, and
          ``"auto"`` (100 iterations of L-BFGS, then 3 of newton-cg) reached a
          relative gap of 6e-11 in 128 ms. From a warm start along a path of C,
          newton-cg took 0.28x to 0.82x the time of cold fits, L-BFGS 0.86x to 1x.
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` when their shape fits,
        for example along a path of values of C (``set_params(C=c).fit(X, y)``);
        ``"auto"`` then runs newton-cg.
    class_weight : dict or "balanced", default=None
        Weights of the classes, ``{class_label: weight}``; they multiply the sample
        weights. ``"balanced"`` uses ``n_samples / (n_classes * bincount(y))``, with
        the counts weighted by ``sample_weight``. None gives every class weight 1.
    n_jobs : int, default=None
        Number of OpenMP threads for fitting and prediction. None uses
        ``omp_get_max_threads()``, which honours ``OMP_NUM_THREADS`` and
        :func:`threadpoolctl.threadpool_limits`; -1 uses every CPU; -2 all but
        one. BLAS is limited to one thread while the kernels run.
    verbose : int, default=0
        If positive, print the objective and the gradient's largest entry at every
        solver iteration.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    coef_ : ndarray of shape (n_classes, n_features)
        Coefficients of the features in the decision function, one row per class,
        in the dtype of X (float32 or float64). With two classes the rows are
        opposite: the model is binary logistic regression with ``2 * C`` and
        coefficients ``coef_[1] - coef_[0]``.
    intercept_ : ndarray of shape (n_classes,)
        Intercepts, centred to sum to zero (softmax is unchanged by a shift).
        Zero when ``fit_intercept=False``.
    n_iter_ : int
        Number of solver iterations of the last fit (with ``"auto"``, of both
        solvers).
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
        "C": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "lbfgs", "newton-cg"})],
        "warm_start": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: finite real numbers.
        y : array-like of shape (n_samples,)
            Class labels; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample, with a positive sum. None gives
            every sample weight 1.

        Returns
        -------
        self : SoftmaxRegressor
            The fitted estimator.
        """
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], order="C", y_numeric=False
        )
        check_classification_targets(y)
        # Not np.unique(..., return_inverse=True): its temporaries are 5 arrays of n.
        classes = np.unique(y)
        labels = np.searchsorted(classes, y)
        if classes.shape[0] < 2:
            raise ValueError(
                "SoftmaxRegressor needs samples of at least 2 classes in the data, "
                f"but the data contain only one class: {classes[0]!r}."
            )
        n_threads = n_threads_from_n_jobs(self.n_jobs)
        sw = check_sample_weight(sample_weight, X.shape[0], X.dtype, require_positive_sum=True)
        if self.class_weight is not None:
            weights = _class_weights(self.class_weight, classes, labels, sw)
            # The class weights are float64: keep the weights in the dtype of X.
            sw = ((sw if sw.size else 1.0) * weights[labels]).astype(X.dtype)
            if not (sw > 0).any():
                raise ValueError(
                    "class_weight and sample_weight together give every sample weight 0: "
                    "there is nothing to fit."
                )

        objective = LinearSoftmaxObjective(
            X,
            labels,
            classes.shape[0],
            sw,
            C=self.C,
            fit_intercept=self.fit_intercept,
            n_threads=n_threads,
        )
        warm = (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == (classes.shape[0], X.shape[1])
        )
        solver = self.solver if self.solver != "auto" else _auto_solver(warm)
        with single_threaded_blas():
            standardized = StandardizedObjective(objective, n_threads)
            if warm:
                w0 = objective.pack(self.coef_, self.intercept_)
            else:
                w0 = np.zeros(objective.n_params)
            result = _SOLVERS[solver](
                standardized,
                standardized.to_solver(w0),
                tol=self.tol,
                max_iter=self.max_iter,
                verbose=self.verbose,
                warm_start=warm,
            )
        if not result.converged:
            if result.reached_max_iter:
                advice = "Increase max_iter, or tol."
            else:
                advice = (
                    f"The line search found no further decrease: tol={self.tol:g} may be "
                    f"below what {X.dtype.name} arithmetic can resolve here."
                )
            warnings.warn(
                f"SoftmaxRegressor ({solver}) did not converge after "
                f"{result.n_iter} iterations (max_iter={self.max_iter}; solver: "
                f"{result.message.strip(' .:')}). {advice}",
                ConvergenceWarning,
                stacklevel=3,  # the caller of fit, past _fit_context's wrapper
            )
        coef, intercept = objective.unpack(standardized.to_model(result.w))
        self.classes_ = classes
        self.coef_ = coef
        self.intercept_ = intercept - intercept.mean()
        self.n_iter_ = result.n_iter
        return self

    def _logits(self, X):
        """The (n_samples, n_classes) logits, computed in parallel without BLAS."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        dtype = X.dtype
        coef_t = np.ascontiguousarray(self.coef_.T, dtype=dtype)
        intercept = np.ascontiguousarray(self.intercept_, dtype=dtype)
        out = np.empty((X.shape[0], coef_t.shape[1]), dtype=dtype)
        linear_kernels(out.shape[1]).linear_logits(
            X, coef_t, intercept, out, n_threads_from_n_jobs(self.n_jobs)
        )
        return out

    def decision_function(self, X):
        """Confidence scores: the logits ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            With two classes, the log-odds of ``classes_[1]`` against
            ``classes_[0]``, of shape (n_samples,), as scikit-learn expects.
        """
        logits = self._logits(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict(self, X):
        """Predict the most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X):
        """Class probabilities: the softmax of the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        logits = self._logits(X)
        _kernels.softmax_rows(logits, logits, n_threads_from_n_jobs(self.n_jobs))
        return logits

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably as a log-softmax.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Finite wherever the true value is in range, even where
            :meth:`predict_proba` rounds to 0.
        """
        logits = self._logits(X)
        _kernels.log_softmax_rows(logits, logits, n_threads_from_n_jobs(self.n_jobs))
        return logits

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _auto_solver(warm):
    """The solver that ``solver="auto"`` runs: see the class docstring."""
    return "newton-cg" if warm else "lbfgs, then newton-cg"


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
