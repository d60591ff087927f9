"""First-run frictions: the source folder imported in place of the installed package."""

import shutil
import subprocess
import sys
from pathlib import Path

import softmaxreg

# The source folder has no compiled kernels. An editable install's finder (mesonpy's,
# first on sys.meta_path) would find the built ones, so the subprocess drops it, as
# if the package were installed normally and the source folder came first on sys.path.
IMPORT_SHADOWED = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "MesonpyMetaFinder"]
sys.path.insert(0, sys.argv[1])
import softmaxreg
"""


def test_source_folder_without_kernels_says_what_to_do(tmp_path):
    source = Path(softmaxreg.__file__).parent
    (tmp_path / "softmaxreg").mkdir()
    for path in source.glob("*.py"):  # the pure-Python sources, not the compiled kernels
        shutil.copy(path, tmp_path / "softmaxreg")
    result = subprocess.run(
        [sys.executable, "-P", "-c", IMPORT_SHADOWED, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    message = result.stderr
    assert "circular import" in message  # the original error, chained
    assert "The above exception was the direct cause" in message
    last = message.strip().splitlines()[-1]
    assert last.startswith("ImportError: softmaxreg was imported from")
    assert str(tmp_path / "softmaxreg") in last
    for advice in ["source folder", "another folder", "python -P", "pip install --no-build-isolation -e ."]:
        assert advice in last
