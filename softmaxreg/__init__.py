"""Multinomial logistic (softmax) regression for multicore CPUs.

Cython/OpenMP kernels for the numerically stable softmax cross-entropy, and
:class:`SoftmaxRegressor`, a scikit-learn classifier built on them, and
:class:`SoftmaxRegressorCV`, which chooses its C and L1 ratio by cross-validation.
"""

import importlib.util
import os

try:
    from . import _kernels
except ImportError as exc:
    if importlib.util.find_spec(f"{__name__}._kernels") is not None:
        raise  # the compiled kernels exist but do not load: the original error says why
    raise ImportError(
        f"softmaxreg was imported from {os.path.dirname(__file__)}, which has no compiled "
        "kernels (softmaxreg._kernels): it is the source folder, and it hides any "
        "installed softmaxreg, as Python looks in the current folder (or the script's) "
        "first. Run Python from another folder, or as `python -P` (which leaves that "
        "folder off sys.path), or install the sources in editable mode with "
        "`pip install --no-build-isolation -e .` (after installing the build "
        "requirements: meson-python, meson, ninja, Cython and numpy)."
    ) from exc

from ._config import show_config
from ._cv import SoftmaxRegressorCV
from ._estimator import SoftmaxRegressor
from .functional import log_softmax, softmax, softmax_cross_entropy

__version__ = "0.1.0"

__all__ = [
    "SoftmaxRegressor",
    "SoftmaxRegressorCV",
    "log_softmax",
    "show_config",
    "softmax",
    "softmax_cross_entropy",
    "__version__",
]
