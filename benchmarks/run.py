"""Run the benchmark suite: kernel timings, fit timings, plots and the target checks.

    python -P benchmarks/run.py [--quick] [--only kernel|fit|path|small|sparse] [--problems P1,P2]
                                [--fit-dtypes float64,float32]

Writes under benchmarks/results/ (benchmarks/results/quick/ with --quick): machine.txt,
kernel.md, fit.md, path.md, small.md (small fits, grid searches, a busy machine, kernel
threads: its own targets), sparse.md (text, hashed and one-hot data: its own targets, and
sparse_<problem>.png), summary.md, results.json and subopt_<problem>_<dtype>.png. A full run
of every problem also puts the tables and the P1 plot into benchmarks/README.md.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # -P leaves this folder off sys.path too

import numpy as np  # noqa: E402

import bench_fit  # noqa: E402
import bench_kernel  # noqa: E402
import bench_path  # noqa: E402
import bench_small  # noqa: E402
import bench_sparse  # noqa: E402
from machine import busy_warning, load_average, machine_facts  # noqa: E402
from problems import PROBLEMS, make_problem  # noqa: E402
from targets import summarize  # noqa: E402

README = HERE / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def expected_minutes(problems, quick, n_dtypes):
    """(typical, at most) minutes of a run, from the fit budgets of bench_fit.

    Most paths end long before their budget (the solver converges), so a typical run
    takes about half of the bound.
    """
    budget = bench_fit.BUDGETS[quick]
    # A scikit-learn method on a large problem: its path, its default fit, and the
    # extra runs timing the default and the two gaps. softmaxreg and digits are quick.
    per_method = budget.path + budget.default + 3 * budget.retime
    n_methods = sum(
        sum(1 for method in bench_fit.methods(PROBLEMS[name])
            if not method.name.startswith("softmaxreg") and not method.skip)
        for name in problems if PROBLEMS[name].synthetic)
    bound = n_dtypes * n_methods * per_method
    bound += (15 if quick else 90) + (3 if quick else 30) * len(problems)  # kernel, data, ours
    bound += 150 if quick else 600  # bench_small: small fits, grid searches, busy machine
    # bench_sparse: per problem, 4 scikit-learn ladders and ours within their budgets, the
    # default fits and the memory runs.
    bound += 3 * (5 * bench_sparse.BUDGET[quick] + (60 if quick else 400))
    return bound / 120, bound / 60


def to_json(value):
    """Measurements with tuple keys made "a/b/c" strings, NumPy numbers made floats."""
    if isinstance(value, dict):
        return {"/".join(map(str, k)) if isinstance(k, tuple) else str(k): to_json(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def update_readme(kernel_text, fit_text, summary_text, plot_name):
    """Put this run's tables and one plot between the markers of benchmarks/README.md."""
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return False
    image = f"![suboptimality against time, P1](results/{plot_name})"
    block = "\n".join([BEGIN, "", summary_text, image, "", kernel_text, fit_text, END])
    README.write_text(re.sub(re.escape(BEGIN) + ".*" + re.escape(END), lambda _: block, text,
                             flags=re.S))
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="softmaxreg benchmarks: kernel and fit timings against scikit-learn.")
    parser.add_argument("--quick", action="store_true",
                        help="problems with 20x fewer rows, fewer repeats, short budgets: "
                             "a smoke test of about 5 minutes")
    parser.add_argument("--only", choices=["kernel", "fit", "path", "small", "sparse"],
                        help="run one part only")
    parser.add_argument("--problems", default=",".join(PROBLEMS),
                        help=f"comma-separated, from {','.join(PROBLEMS)}")
    parser.add_argument("--fit-dtypes", default="float64",
                        help="dtypes of the fits: float64, or float64,float32 (twice as long)")
    args = parser.parse_args(argv)
    problems = args.problems.split(",")
    unknown = [name for name in problems if name not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {list(PROBLEMS)}")
    fit_dtypes = tuple(np.dtype(name).type for name in args.fit_dtypes.split(","))
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    typical, bound = expected_minutes(problems, args.quick, len(fit_dtypes))
    mode = "quick" if args.quick else "full"
    print(f"softmaxreg benchmarks, {mode} mode: expected about {typical:.0f} min "
          f"(at most about {bound:.0f} min on 2 cores)\n", flush=True)
    facts = machine_facts(PROBLEMS[name].n_classes for name in problems)
    print("\n".join(facts) + "\n", flush=True)
    (out / "machine.txt").write_text("\n".join(facts) + "\n")

    for name in problems:  # generate (or load) every data set first: a slow first run
        make_problem(name, np.float64, args.quick)
    log("data ready")

    kernel = fit = path = None
    kernel_text = fit_text = path_text = ""
    if args.only in (None, "kernel"):
        kernel_text, kernel = bench_kernel.run(problems, args.quick, log=log)
        (out / "kernel.md").write_text(kernel_text)
        print("\n" + kernel_text, flush=True)
    if args.only in (None, "fit"):
        fit_text, fit = bench_fit.run(problems, args.quick, fit_dtypes, out=out, log=log)
        (out / "fit.md").write_text(fit_text)
        print("\n" + fit_text, flush=True)
    if args.only in (None, "path"):
        path_problems = [name for name in bench_path.DEFAULT_PROBLEMS if name in problems]
        path_text, path = bench_path.run(path_problems, args.quick, log=log)
        (out / "path.md").write_text(path_text)
        print("\n" + path_text, flush=True)
    small_text = ""
    if args.only in (None, "small"):
        small_text = bench_small.run(args.quick, log=log)
        (out / "small.md").write_text(small_text)
        print("\n" + small_text, flush=True)
    sparse_text = ""
    if args.only in (None, "sparse"):
        sparse_text = bench_sparse.run(list(bench_sparse.PROBLEMS), args.quick, out, log=log)
        (out / "sparse.md").write_text(sparse_text)
        print("\n" + sparse_text, flush=True)
    if args.only in ("small", "sparse"):
        print(f"results in {out}")
        return 0
    summary_text = summarize(kernel, fit, args.quick, path)
    if small_text:  # bench_small's targets table comes first in small.md
        summary_text += "\n\n" + small_text.split("\n\n### ", 1)[0] + "\n"
    if sparse_text:  # and bench_sparse's targets table, from sparse.md
        table = sparse_text.partition("### Targets (issue 10)\n\n")[2].split("\n\n", 1)[0]
        summary_text += "\n\n### Sparse problems: targets (issue 10)\n\n" + table + "\n"
    (out / "summary.md").write_text(summary_text)
    print("\n" + summary_text)
    (out / "results.json").write_text(json.dumps(
        to_json({"mode": mode, "machine": facts, "kernel": kernel, "fit": fit, "path": path}),
        indent=1))

    elapsed = time.perf_counter() - start
    load = load_average()
    print(f"finished in {elapsed / 60:.1f} min"
          + (f"; load average now {load:.2f}" if load is not None else ""))
    warning = busy_warning()
    if warning:
        print(warning)
    if not args.quick and args.only is None and set(problems) == set(PROBLEMS):
        plot = "subopt_P1_float64.png"
        if update_readme(kernel_text, fit_text + "\n" + path_text, summary_text, plot):
            print(f"tables and {plot} put into {README}")
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
