"""The kernel builds: selection, and the same results from each on tile edges and extremes."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special

from softmaxreg import _dispatch

BUILDS = _dispatch.available_builds()
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def test_baseline_always_available():
    assert BUILDS[0] == "baseline"
    assert _dispatch.select_kernels("baseline").__name__ == "softmaxreg._kernels"


def test_unknown_choice_is_rejected():
    with pytest.raises(ValueError, match="SOFTMAXREG_KERNELS"):
        _dispatch.select_kernels("sse9")


@pytest.mark.parametrize("name", ["avx2", "avx512"])
def test_a_build_that_cannot_run_is_an_error(name):
    if name in BUILDS:
        assert _dispatch.select_kernels(name).__name__ == f"softmaxreg._kernels_{name}"
    else:
        with pytest.raises(ImportError, match=name):
            _dispatch.select_kernels(name)


def test_linear_kernels_by_number_of_classes():
    """Under "auto", AVX-512 only for many classes; otherwise the row-wise choice."""
    assert _dispatch.linear_kernels(3) is _dispatch.kernels
    if "avx512" in BUILDS and _dispatch._choice == "auto":
        assert _dispatch.linear_kernels(100).__name__ == "softmaxreg._kernels_avx512"


def fused(kernels, X, labels, coef_t, intercept, n_threads=2):
    grad_coef_t = np.empty_like(coef_t)
    grad_intercept = np.empty_like(intercept)
    loss = kernels.linear_loss_gradient(
        X, labels, np.empty(0, X.dtype), coef_t, intercept, grad_coef_t, grad_intercept, n_threads
    )
    return loss, grad_coef_t, grad_intercept


def reference(X, labels, coef_t, intercept):
    z = X.astype(np.float64) @ coef_t.astype(np.float64) + intercept.astype(np.float64)
    log_p = special.log_softmax(z, axis=1)
    G = np.exp(log_p)
    G[np.arange(len(X)), labels] -= 1
    return -log_p[np.arange(len(X)), labels].sum(), X.T.astype(np.float64) @ G, G.sum(axis=0)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, d, k", [(1, 1, 1), (7, 5, 3), (301, 37, 17), (64, 9, 100), (9, 4, 8)])
@pytest.mark.parametrize("logit_scale", [0.1, 300.0])
def test_fused_kernel_matches_reference_on_tile_edges(build, dtype, n, d, k, logit_scale):
    """Row counts, features and classes that are not multiples of the tiles; logits spread over 1e3."""
    rng = np.random.default_rng(n + d + k)
    X = rng.standard_normal((n, d)).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.intp)
    coef_t = (logit_scale * rng.standard_normal((d, k)) / np.sqrt(d)).astype(dtype)
    intercept = rng.standard_normal(k).astype(dtype)
    loss, g_coef, g_int = fused(_dispatch.select_kernels(build), X, labels, coef_t, intercept)
    ref_loss, ref_coef, ref_int = reference(X, labels, coef_t, intercept)
    rtol = RTOL[dtype] * (1 if logit_scale < 1 else 10 if dtype is np.float64 else 100)
    assert loss == pytest.approx(ref_loss, rel=rtol, abs=rtol)
    assert_allclose(g_coef, ref_coef, rtol=0, atol=rtol * max(np.abs(ref_coef).max(), 1))
    assert_allclose(g_int, ref_int, rtol=0, atol=rtol * max(np.abs(ref_int).max(), 1))


@pytest.mark.skipif(len(BUILDS) < 2, reason="only one kernel build runs here")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_builds_agree(dtype):
    """Every build gives the baseline's loss and gradient, up to rounding."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 23)).astype(dtype)
    labels = rng.integers(0, 11, 500).astype(np.intp)
    coef_t = rng.standard_normal((23, 11)).astype(dtype)
    intercept = rng.standard_normal(11).astype(dtype)
    want = fused(_dispatch.select_kernels("baseline"), X, labels, coef_t, intercept)
    for build in BUILDS[1:]:
        got = fused(_dispatch.select_kernels(build), X, labels, coef_t, intercept)
        for g, w in zip(got, want):
            assert_allclose(g, w, rtol=0, atol=RTOL[dtype] * np.abs(w).max())
