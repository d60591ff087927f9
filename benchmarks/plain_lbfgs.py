"""L-BFGS on the objective in the model's own coordinates: the solver of the foundation
issue, before the change of variables of ``softmaxreg._preconditioning``.

Issue 4's targets compare the solvers against it. It uses softmaxreg's private
objective and solver functions, as a benchmark may; it is not part of the package.
"""

import numpy as np

from softmaxreg._objective import LinearSoftmaxObjective
from softmaxreg._solvers import lbfgs
from softmaxreg._threads import limited_blas


class PlainLbfgs:
    """A minimal estimator: ``fit`` sets ``coef_``, ``intercept_`` and ``n_iter_``.

    Parameters
    ----------
    C, tol, max_iter : as for ``SoftmaxRegressor``.
    n_jobs : int
        OpenMP threads.
    """

    def __init__(self, C=1.0, tol=1e-4, max_iter=100, n_jobs=2):
        self.C, self.tol, self.max_iter, self.n_jobs = C, tol, max_iter, n_jobs

    def fit(self, X, y):
        classes = np.unique(y)
        X = np.ascontiguousarray(X)
        objective = LinearSoftmaxObjective(
            X, np.searchsorted(classes, y), classes.shape[0], np.empty(0, dtype=X.dtype),
            C=self.C, fit_intercept=True, n_threads=self.n_jobs,
        )
        with limited_blas():
            result = lbfgs(objective, np.zeros(objective.n_params), tol=self.tol,
                           max_iter=self.max_iter)
        self.coef_, intercept = objective.unpack(result.w)
        self.intercept_ = intercept - intercept.mean()
        self.n_iter_ = result.n_iter
        return self
