"""show_config, and the warning of a build without OpenMP."""

import io
import platform
import warnings

import numpy
import pytest
import scipy
import sklearn
import threadpoolctl

import softmaxreg
from softmaxreg import _config, _dispatch, _threads
from softmaxreg._kernels import openmp_max_threads


def test_show_config_prints_each_item():
    out = io.StringIO()
    assert softmaxreg.show_config(file=out) is None
    text = out.getvalue()
    lines = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    for name, version in [
        ("softmaxreg", softmaxreg.__version__),
        ("python", platform.python_version()),
        ("numpy", numpy.__version__),
        ("scipy", scipy.__version__),
        ("scikit-learn", sklearn.__version__),
        ("threadpoolctl", threadpoolctl.__version__),
    ]:
        assert lines[name].strip().startswith(version)
    assert lines["OpenMP"].strip().startswith("yes" if _config.openmp_enabled() else "no")
    assert lines["omp_get_max_threads()"].strip() == str(openmp_max_threads())
    assert lines["available CPUs"].strip() == str(_threads.available_cpus())
    assert lines["kernels"].strip().startswith(_config._build_name(_dispatch.kernels))
    assert lines["builds this CPU runs"].strip() == ", ".join(_dispatch.available_builds())
    assert lines["SOFTMAXREG_KERNELS"].strip() == _dispatch._choice
    rows = [line.split() for line in text.splitlines()]
    assert ["user_api", "internal_api", "version", "num_threads", "filepath"] in rows
    for pool in threadpoolctl.threadpool_info():
        keys = ("user_api", "internal_api", "version", "num_threads", "filepath")
        assert [str(pool[key]) for key in keys] in rows

def test_build_names():
    assert _config._build_name(_dispatch.select_kernels("baseline")) == "baseline"
    for name in _dispatch.available_builds():
        assert _config._build_name(_dispatch.select_kernels(name)) == name


def test_show_config_is_public():
    assert "show_config" in softmaxreg.__all__


@pytest.fixture
def serial_build(monkeypatch):
    """A build without OpenMP on a 4-CPU machine."""
    monkeypatch.setattr(_config, "openmp_enabled", lambda: False)
    monkeypatch.setattr(_threads, "available_cpus", lambda: 4)


@pytest.mark.parametrize("n_jobs", [2, 3, 100, -1, -3])
def test_serial_build_warns_when_n_jobs_asks_for_threads(serial_build, n_jobs):
    with pytest.warns(UserWarning, match="built without OpenMP.*rebuild"):
        _config.warn_serial_build(n_jobs)


@pytest.mark.parametrize("n_jobs", [None, 1, -4, -100])
def test_serial_build_quiet_when_n_jobs_means_one_thread(serial_build, n_jobs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _config.warn_serial_build(n_jobs)


def test_openmp_build_never_warns(monkeypatch):
    monkeypatch.setattr(_config, "openmp_enabled", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n_jobs in [None, 1, 2, -1]:
            _config.warn_serial_build(n_jobs)
