"""Multinomial logistic (softmax) regression for multicore CPUs.

Cython/OpenMP kernels for the numerically stable softmax cross-entropy, and
:class:`SoftmaxRegressor`, a scikit-learn classifier built on them.
"""

from ._estimator import SoftmaxRegressor
from .functional import log_softmax, softmax, softmax_cross_entropy

__version__ = "0.1.0"

__all__ = [
    "SoftmaxRegressor",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "__version__",
]
