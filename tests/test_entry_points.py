"""One console entry per package, every job a subcommand of it, and each one answers --help."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# programs the server starts for itself, never a user's job: the launcher (standard library only, it runs between
# a start and the exec) and the calibration's measuring child
CHILD_PROGRAMS = ["serving/launcher.py", "serving/measure.py"]


def test_only_the_package_entry_modules_run_as_scripts():
    scripts = sorted(str(p.relative_to(ROOT)) for pkg in ("training", "export", "triton_repo", "serving", "loadtest")
                     for p in (ROOT / pkg).glob("*.py") if '__name__ == "__main__"' in p.read_text()
                     and p.name != "__main__.py")
    assert scripts == CHILD_PROGRAMS, scripts


@pytest.mark.parametrize("argv", [
    ["training", "--help"], ["training", "bench", "--help"], ["training", "train", "--help"],
    ["export", "--help"], ["export", "trt-build", "--help"], ["export", "torch-bench", "--help"],
    ["serving", "--help"], ["serving", "prometheus", "--help"], ["serving", "calibrate", "--help"],
    ["loadtest", "chaos", "--help"], ["loadtest", "sweep", "--help"], ["loadtest", "runtimes", "--help"],
    ["loadtest", "locust", "--help"],
    ["sketchygan_client.cli", "generate", "--help"],
])
def test_every_job_answers_help(argv):
    r = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr
