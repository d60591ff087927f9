"""The command line: the report it prints, its help, its argument errors, ``python -m``."""

import re
import subprocess
import sys

import pytest
from sklearn.exceptions import ConvergenceWarning

from softmaxreg._main import main


def table_row(output, model):
    """Return the cells of the markdown table row of ``model``."""
    match = re.search(rf"^\| {model} .*\|$", output, flags=re.MULTILINE)
    assert match is not None, f"no table row for {model} in:\n{output}"
    return [cell.strip() for cell in match.group(0).strip("|").split("|")]


def test_report_compares_both_models(capsys):
    assert main(["--dataset", "iris", "--repeats", "1"]) == 0
    output = capsys.readouterr().out
    target = float(re.search(r"ms to gap (\S+)", output).group(1))
    gaps = {}
    for model in ("SoftmaxRegressor", "LogisticRegression"):
        _, accuracy, log_loss, gap, n_iter, fit_ms, speedup, to_gap, speedup_at_gap = table_row(
            output, model)
        assert float(accuracy) > 0.8
        assert 0 < float(log_loss) < 1
        assert 0 <= float(gap) < 1e-2
        gaps[model] = float(gap)
        assert int(n_iter) >= 1
        median, low, high = map(float, re.fullmatch(r"(\S+) \((\S+)-(\S+)\)", fit_ms).groups())
        assert 0 < low <= median <= high
        assert re.fullmatch(r"\d+\.\d\dx", speedup) and re.fullmatch(r"\d+\.\d\dx", speedup_at_gap)
        # Time to the larger gap: the model that stopped closer gets there in fewer iterations.
        iterations = int(re.search(r"\((\d+) it\.\)$", to_gap).group(1))
        assert iterations <= int(n_iter)
    assert target == pytest.approx(max(gaps.values()), rel=0.1)
    assert table_row(output, "LogisticRegression")[6] == "1.00x"
    assert table_row(output, "LogisticRegression")[-1] == "1.00x"
    assert "BLAS is limited to 1 thread" in output
    coef_diff, proba_diff = re.search(
        r"max \|coef_ difference\|: (\S+), max \|predict_proba difference\|: (\S+)", output
    ).groups()
    # Same objective, both converged to tol=1e-4: the two models agree closely.
    assert float(coef_diff) < 1e-2 and float(proba_diff) < 1e-2
    assert re.search(r"machine: \d+ CPUs, OpenMP (on|off), SoftmaxRegressor threads: up to \d+", output)


def test_two_classes_compare_the_same_model(capsys):
    """With two classes both fit the binomial model at the same C: the same coefficients."""
    assert main(["--dataset", "breast_cancer", "--repeats", "1", "--tol", "1e-8"]) == 0
    output = capsys.readouterr().out
    coef_diff = re.search(r"max \|coef_ difference\|: (\S+),", output).group(1)
    assert float(coef_diff) < 1e-3


def test_raw_features_without_a_scaler(capsys):
    """--raw fits the unscaled features: SoftmaxRegressor converges without a warning where
    LogisticRegression (max_iter=100) does not."""
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge") as record:
        assert main(["--dataset", "digits", "--raw", "--repeats", "1", "--max-iter", "100"]) == 0
    assert not any("SoftmaxRegressor" in str(w.message) for w in record)
    output = capsys.readouterr().out
    assert "raw features" in output and "StandardScaler" not in output.splitlines()[0]
    assert float(table_row(output, "SoftmaxRegressor")[1]) > 0.9
    ours_gap, their_gap = (float(table_row(output, m)[3]) for m in ("SoftmaxRegressor", "LogisticRegression"))
    assert ours_gap < 1e-6 < their_gap


def test_help_lists_options_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--dataset", "--C", "--tol", "--max-iter", "--n-jobs", "--repeats",
                   "--test-size", "--random-state"):
        assert option in help_text
    assert "(default: digits)" in help_text and "(default: 1000)" in help_text


@pytest.mark.parametrize(
    "argv",
    [["--repeats", "0"], ["--C", "-1"], ["--C", "nan"], ["--tol", "x"], ["--test-size", "1"],
     ["--n-jobs", "0"], ["--max-iter", "0"], ["--dataset", "mnist"]],
)
def test_invalid_value_is_an_argparse_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err


def test_python_dash_m_runs(tmp_path):
    # Run outside the source tree, whose softmaxreg/ has no compiled kernels.
    completed = subprocess.run(
        [sys.executable, "-m", "softmaxreg", "--dataset", "iris", "--repeats", "1"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert "SoftmaxRegressor" in completed.stdout and "LogisticRegression" in completed.stdout


def test_convergence_warnings_are_shown_once_per_model(capsys):
    with pytest.warns(ConvergenceWarning) as records:
        assert main(["--dataset", "iris", "--repeats", "2", "--max-iter", "2"]) == 0
    messages = [str(record.message) for record in records
                if issubclass(record.category, ConvergenceWarning)]
    assert sum("SoftmaxRegressor" in message for message in messages) == 1
    assert len(messages) == 2
