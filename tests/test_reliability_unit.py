"""Supervisor, chaos and serving-CLI pieces that need no server: configs, messages, argument errors."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.chaos import ChaosConfig
from loadtest.chaos_report import markdown
from serving.process import Child, describe_exit
from serving.supervisor import SupervisorConfig
from tests.conftest import mapped_by_child

ROOT = Path(__file__).resolve().parents[1]


def test_supervisor_config_rejects_nonsense():
    with pytest.raises(ValueError, match=r"SupervisorConfig.poll_s must be > 0, got 0"):
        SupervisorConfig(poll_s=0)
    with pytest.raises(ValueError, match=r"SupervisorConfig.backoff_max_s must be >= backoff_s \(5\), got 1"):
        SupervisorConfig(backoff_s=5, backoff_max_s=1)
    with pytest.raises(ValueError, match="crash_loop_restarts must be >= 0"):
        SupervisorConfig(crash_loop_restarts=-1)


def test_exit_descriptions_name_the_signal():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(None) == "still running"


def test_mapped_finds_regions_a_live_process_maps_and_only_those(tmp_path):
    """The shared-memory cleanup removes only regions nobody maps: checked against a real child's mapping."""
    from serving.server import _mapped
    held, free = tmp_path / "held", tmp_path / "free"
    held.write_bytes(b"x" * 4096)
    free.write_bytes(b"x" * 4096)
    with mapped_by_child(held):
        assert _mapped({str(held), str(free)}) == {str(held)}
    assert _mapped({str(held), str(free)}) == set()


def test_chaos_config_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="unknown fault"):
        ChaosConfig(repository=tmp_path, faults=("meteor",))
    with pytest.raises(ValueError, match="holds no sketchygan/config.pbtxt"):
        ChaosConfig(repository=tmp_path)


def test_chaos_report_table_has_a_row_per_fault():
    report = {"results": [{"fault": "stub-kill", "client_failures": 0, "client_calls": 10, "recovery_s": 1.5,
                           "goodput_before_rps": 200.0, "goodput_during_rps": 150.0, "wire": {"OK": 3}}]}
    text = markdown(report)
    assert "| stub-kill | 0 | 10 | 1.5 | 200.0 → 150.0 | OK 3 |" in text


@pytest.mark.parametrize("argv, message", [
    (["-m", "loadtest", "chaos", "--faults", "meteor"], "unknown fault"),
    (["-m", "loadtest", "chaos", "--repository", "/nonexistent"], "holds no sketchygan/config.pbtxt"),
    (["-m", "serving", "--grpc-port", "0"], "must be a TCP port"),
    (["-m", "serving", "--health-port", "70000"], "--health-port must be a TCP port"),
    (["-m", "serving", "--budget-ms", "0"], "--budget-ms must be > 0"),
    (["-m", "serving", "--cpus", "first"], "is not like '0', '0,1' or '0-3'"),
    (["-m", "serving", "--cpus", "4096"], "must be a non-empty subset of this machine's cores"),
    (["-m", "serving", "calibrate", "--budget-ms", "-5"], "--budget-ms must be > 0"),
    (["-m", "loadtest", "chaos", "--conditions", "on-the-moon"], "unknown condition 'on-the-moon'"),
    (["-m", "loadtest", "compare", "--repository", "nodir"], "--repository expects NAME=DIR, got 'nodir'"),
    (["-m", "loadtest", "compare", "--repository", "a=/nonexistent"],
     "no exported sketchygan model in ['/nonexistent']"),
])
def test_cli_argument_errors_exit_2_with_a_message(argv, message):
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_restart_benchmark_config_and_table_say_what_is_wrong_and_what_was_measured(tmp_path):
    from loadtest.restart import RestartConfig
    from loadtest.restart import markdown as restart_markdown
    with pytest.raises(ValueError, match="RestartConfig.rounds must be >= 1, got 0"):
        RestartConfig(repository=tmp_path, rounds=0)
    with pytest.raises(ValueError, match="unknown condition"):
        RestartConfig(repository=tmp_path, conditions=("fast",))
    with pytest.raises(ValueError, match="run `make export`"):
        RestartConfig(repository=tmp_path)
    report = {"cpu": {"model": "AMD EPYC", "isa": "avx2", "cores": 2}, "conditions": {"unpinned": {
        "rounds": [{"drain_s": 0.3, "start_s": 3.5, "sigterm_to_ready_s": 3.8, "exit_code": 0}], "calls": 500,
        "failures": 0, "sigterm_to_ready_s": {"min": 3.8, "median": 3.8, "max": 3.8}}}}
    table = restart_markdown(report)
    assert "AMD EPYC (avx2, 2 cores)" in table and "| unpinned | 1 | 3.80 / 3.80 / 3.80 | 0.30 | 500 | 0 |" in table


def test_overload_kinds_and_closed_loop_rows_are_checked(tmp_path):
    from loadtest.closed_loop import ClosedLoopConfig, old_queue_share_s
    (tmp_path / "sketchygan").mkdir()
    (tmp_path / "sketchygan" / "config.pbtxt").write_text('name: "sketchygan"\n')
    with pytest.raises(ValueError, match="overload_kinds must be some of"):
        ChaosConfig(repository=tmp_path, overload_kinds=("plain", "shouting"))
    with pytest.raises(ValueError, match=r"a row is \(callers >= 1"):
        ClosedLoopConfig(repository=tmp_path, rows=((8, 4, 2),))
    with pytest.raises(ValueError, match="unknown condition"):
        ClosedLoopConfig(repository=tmp_path, condition="on-the-moon")
    # the old default queue timeout: the budget less two batches at the batch limit, at least a quarter of it
    assert old_queue_share_s({"per_image_s": 0.005, "overhead_s": 0.005, "batch_limit": 14, "budget_s": 0.3}) == \
        pytest.approx(0.3 - 2 * 0.075)
    assert old_queue_share_s({"per_image_s": 0.05, "overhead_s": 0.0, "batch_limit": 3, "budget_s": 0.3}) == \
        pytest.approx(0.075)


def test_the_soak_reports_each_processs_growth_after_the_warm_up():
    from loadtest.memory import rss_growth, rss_mib
    samples = [{"t": 0.0, "tritonserver": 100.0, "stub 0": 50.0}, {"t": 30.0, "tritonserver": 140.0, "stub 0": 60.0},
               {"t": 61.0, "tritonserver": 150.0, "stub 0": 70.0}, {"t": 300.0, "tritonserver": 151.5, "stub 0": 90.0}]
    g = rss_growth(samples)
    assert g["tritonserver"] == {"start": 100.0, "after_60s": 150.0, "end": 151.5, "growth_after_60s": 1.5}
    assert g["stub 0"]["growth_after_60s"] == 20.0  # what a leaking model process shows
    assert rss_mib(os.getpid())["tritonserver"] > 0  # any live process is measured (here this one)


def test_a_fatal_log_line_is_found_once_written_whole_and_only_in_this_start(tmp_path):
    log = tmp_path / "child.log"
    log.write_text("FATAL from an earlier start\n")
    child = Child("sleeper", ["sleep", "30"], log).start()
    try:
        assert child.fatal_line(("FATAL",)) is None  # the earlier start's line is not this start's
        with open(log, "a") as f:
            f.write("ok\nFATAL half a li")
        assert child.fatal_line(("FATAL",)) is None  # a line still being written waits for its end
        with open(log, "a") as f:
            f.write("ne\n")
        assert child.fatal_line(("FATAL",)) == "FATAL half a line"
        assert child.fatal_line(("FATAL",)) is None  # read once
    finally:
        child.stop(5)
