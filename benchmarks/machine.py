"""Facts about the machine and the libraries a benchmark ran with."""

import os
import platform

import numpy as np
import scipy
import sklearn
import threadpoolctl
from threadpoolctl import threadpool_info

import softmaxreg
from softmaxreg import _dispatch
from softmaxreg._threads import available_cpus, n_threads_from_n_jobs


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_warning():
    """A line of warning when other processes keep the CPUs busy, else ""."""
    load = load_average()
    if load is not None and load > 0.5 * available_cpus():
        return (f"WARNING: load average {load:.2f} on {available_cpus()} CPUs: other processes "
                "are running and the times below are not to be trusted.")
    return ""


def machine_facts(class_counts=()):
    """Lines of text: CPU and cores, BLAS and OpenMP libraries and threads, versions.

    Parameters
    ----------
    class_counts : iterable of int
        Numbers of classes of the problems run: the line on kernel builds says which
        build runs the fused kernel for each.
    """
    builds = _dispatch.available_builds()
    fused = ", ".join(
        f"{k} classes: {_dispatch.linear_kernels(k).__name__.rsplit('.', 1)[-1]}"
        for k in sorted(set(class_counts))
    )
    lines = [
        f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs, {available_cpus()} usable "
        f"by this process; {platform.system()} {platform.machine()}",
        f"softmaxreg {softmaxreg.__version__}: OpenMP "
        f"{'on' if _dispatch.kernels.openmp_enabled() else 'OFF'} "
        f"(omp_get_max_threads() = {n_threads_from_n_jobs(None)}); kernel builds {builds}; "
        f"SOFTMAXREG_KERNELS={os.environ.get('SOFTMAXREG_KERNELS', 'auto')}; "
        f"row-wise kernels: {_dispatch.kernels.__name__.rsplit('.', 1)[-1]}"
        + (f"; fused kernel: {fused}" if fused else ""),
    ]
    for info in threadpool_info():
        details = [info["prefix"] + (f" {info['version']}" if info.get("version") else "")]
        details += [info[key] for key in ("architecture", "threading_layer") if info.get(key)]
        details.append(f"{info['num_threads']} threads")
        lines.append(f"{info['user_api']}: {', '.join(details)} "
                     f"({os.path.basename(info['filepath'])})")
    env = {name: os.environ[name] for name in
           ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if name in os.environ}
    lines.append(f"thread variables: {env or 'none set'}")
    lines.append(
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, threadpoolctl {threadpoolctl.__version__}"
    )
    load = load_average()
    if load is not None:
        lines.append(f"load average (1 min) at start: {load:.2f}")
    warning = busy_warning()
    if warning:
        lines.append(warning)
    return lines
