"""Start-up calibration: measure what this machine can do with the served model.onnx, and derive the serving limits
from it as *time* instead of constants tuned on some other machine.

`python -m serving` runs it before tritonserver loads the model (`--calibrate on`, the default):
1. the cores the server may use: its CPU affinity, capped by a cgroup CPU quota (`usable_cores`);
2. in a child process pinned to those cores (so it sees the machine as the server will, busy neighbours included),
   for each CPU runtime (onnxruntime, OpenVINO) and layout (k single-threaded instances running at once, or one
   instance with k threads), the time of a batch of n images, fitted as `a·n + b` (`serving/measure.py`);
3. `derive` (serving/plan.py): the runtime and layout with the most throughput, the largest batch whose compute fits a
   quarter of the latency budget, the compute reserve a caller keeps out of its request timeout (two batch times: the
   batch ahead of a request, then its own), the queue size (long enough that callers who send a timeout are refused
   after waiting it out, not at once: what the measured rate drains within the budget's queue share, times the overload
   it should absorb so) and the default queue timeout (the work of a full queue of the largest requests: a request
   that names no timeout is refused only by a full queue, never for waiting);
4. `write_served_repository`: a copy of the model repository (hard links) whose config.pbtxt carries the choices;
   model.py and the client read the measured cost from its parameters.
The budget (`--budget-ms`, default 300) is the time a request may spend queued and computing; callers with
deadlines of 0.5 s keep the rest for the network and scheduling noise. docs/reliability.md has the derivation and
the figures measured on the machines of this project.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

from serving.machine import Machine, cpu_model_and_flags, this_machine
from serving.measure import MEASURE_S, Cost
from serving.plan import (
    CHECK_S,
    DEFAULT_BUDGET_S,
    PLAN_RULES,
    CalibrationError,
    Check,
    Plan,
    derive,
    machine_facts,
    still_holds,
)
from serving.process import launch_command
from triton_repo.precision import DEFAULT_PRECISION, GATE_KEY, check_precision, gate_passed, refusal
from triton_repo.runtimes import CPU_RUNTIMES

MEASURE_TIMEOUT_S = 60.0  # the child must finish long before this
CHILD = ["-m", "serving.measure"]  # the measuring child, started pinned to the server's cores


def fixed_plan(repository: Path, budget_s: float = DEFAULT_BUDGET_S) -> Plan:
    """`--calibrate off`: the exported config's limits as a plan with no measured cost (model.py then predicts
    nothing and only skips cancelled requests)."""
    from triton_repo.config_reader import read_limits
    cfg, _ = model_files(repository)
    limits = read_limits(cfg)
    deployment_precision(cfg, limits.runtime, report=export_report(repository))  # refused here, not as it loads
    return Plan(**asdict(limits), per_image_s=0.0, overhead_s=0.0, budget_s=budget_s, rate_rps=0.0,
                source="fixed")


def deployment_runtime(cfg, runtime: str | None = None) -> str:
    """The runtime a deployment serves with: `runtime` when the operator pins one, else the one its export chose
    (config.pbtxt's `runtime`). Never re-decided by a start: the runtime decides the pixels (OpenVINO and ONNX
    Runtime differ by up to 26 grey levels), and every replica of a deployment must answer alike."""
    chosen = runtime or (cfg.parameters["runtime"].string_value if "runtime" in cfg.parameters else None)
    if chosen not in CPU_RUNTIMES:
        raise CalibrationError(f"unknown runtime {chosen!r}: pin one of {list(CPU_RUNTIMES)} (--runtime) or "
                               f"re-export the model (its config.pbtxt names none)")
    return chosen


def export_report(repository: Path) -> dict | None:
    """The generator folder's export_report.json (what the export checked), None when absent or unreadable."""
    from triton_repo.contract import MODEL_NAME
    try:
        return json.loads((Path(repository) / MODEL_NAME / "export_report.json").read_text())
    except (OSError, ValueError):
        return None


def deployment_precision(cfg, runtime: str, precision: str | None = None, report: dict | None = None) -> str:
    """The precision a deployment computes in: `precision` when the operator pins one, else the one its export chose
    (config.pbtxt's `precision`, f32 when it names none). Like the runtime, never re-decided by a start; refused
    (CalibrationError) where `runtime` cannot compute it, where this CPU has no native bfloat16, or where the export
    `report` does not say the model passed the export's gate in it."""
    chosen = precision or (cfg.parameters["precision"].string_value if "precision" in cfg.parameters
                           else DEFAULT_PRECISION)
    try:
        check_precision(chosen, runtime)
    except ValueError as e:
        raise CalibrationError(str(e)) from None
    why = refusal(chosen, *cpu_model_and_flags())
    if why:
        raise CalibrationError(why)
    if not gate_passed(report, chosen):
        found = (report.get(GATE_KEY) or {}).get(chosen) if report else "no export_report.json"
        raise CalibrationError(f"precision {chosen} refused: the model's export did not pass the {chosen} gate against "
                               f"f32 ({found}); re-export it on a CPU with native bfloat16 (python -m export) or serve "
                               f"it in f32")
    return chosen


def model_files(repository: Path):
    """(parsed config.pbtxt, path of model.onnx) of the generator in `repository`."""
    from triton_repo.config_reader import parse_config
    from triton_repo.contract import MODEL_NAME
    cfg_path = Path(repository) / MODEL_NAME / "config.pbtxt"
    if not cfg_path.is_file():
        raise CalibrationError(f"{cfg_path} does not exist (run `make export`)")
    cfg = parse_config(cfg_path.read_text())
    version = cfg.version_policy.specific.versions[0] if cfg.version_policy.specific.versions else 1
    onnx = cfg_path.parent / str(version) / "model.onnx"
    if not onnx.is_file():
        raise CalibrationError(f"{onnx} does not exist: calibration needs the CPU target's model.onnx")
    return cfg, onnx


@dataclass(frozen=True)
class Deployment:
    """What a measurement of `repository` needs, read once: its config, model.onnx, the contract's sizes, the
    machine it is measured on and the deployment's runtime and precision."""

    cfg: object  # the parsed config.pbtxt (model_config_pb2.ModelConfig)
    onnx: Path
    contract: tuple[int, int, int]  # resolution, noise_dim, num_classes
    machine: Machine
    runtime: str
    precision: str = DEFAULT_PRECISION


def deployment(repository: Path, cpus: tuple[int, ...] | None = None, runtime: str | None = None,
               precision: str | None = None) -> Deployment:
    from triton_repo.config_reader import contract_from_config
    cfg, onnx = model_files(repository)
    c = contract_from_config(cfg)
    chosen = deployment_runtime(cfg, runtime)
    return Deployment(cfg, onnx, (c.resolution, c.noise_dim, c.num_classes), this_machine(onnx, cpus), chosen,
                      deployment_precision(cfg, chosen, precision, export_report(repository)))


class Interrupted(Exception):
    """A measurement was ended early because its caller asked (`cancel`): the server got work meanwhile."""


def _measure_in_child(dep: Deployment, budget_s: float, seconds: float, pin: bool, extra: list[str] = (),
                      cancel: Callable[[], bool] | None = None) -> tuple[list[Cost], dict[str, str]]:
    """`run_measurements` in a child process pinned to the machine's cores (it sees them as the server will).
    `cancel`, polled every 50 ms, ends the child at once when it returns True (`Interrupted`)."""
    machine = dep.machine
    child = [sys.executable, *CHILD, "--onnx", str(dep.onnx), "--contract", ",".join(map(str, dep.contract)),
             "--cores", str(machine.usable_cores), "--budget-s", str(budget_s), "--seconds", str(seconds),
             "--precision", dep.precision, *extra]
    cmd = launch_command(child, machine.cpus if pin else None)  # also ends with us, like the server
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        deadline = time.monotonic() + MEASURE_TIMEOUT_S
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise CalibrationError(f"calibration did not finish within {MEASURE_TIMEOUT_S:.0f} s")
                if cancel is not None and cancel():
                    raise Interrupted()
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise CalibrationError(f"calibration failed (exit {proc.returncode}):\n{stderr[-2000:]}")
    result = json.loads(stdout)
    return [Cost(**{**c, "points": tuple(map(tuple, c["points"]))}) for c in result["costs"]], result["failed"]


def check_plan(repository: Path, plan: Plan, cpus: tuple[int, ...] | None = None,
               cancel: Callable[[], bool] | None = None) -> Check | None:
    """Time `plan`'s runtime and layout at its batch limit (~1-2 s, in a child pinned like the server) and compare it
    with the plan's cost; None when the runtime could not run. What the supervisor does after serving a stored plan,
    with `cancel` saying when the server got work (the child is then ended at once: `Interrupted`)."""
    dep = deployment(repository, cpus, plan.runtime, plan.precision)
    only = ["--only", f"{plan.runtime}:{plan.instances}x{plan.threads}", "--sizes", str(plan.batch_limit),
            "--min-size-s", str(CHECK_S / 2)]
    check, _ = _measure_in_child(dep, plan.budget_s, CHECK_S, cpus is not None, only, cancel)
    return still_holds(plan, check[0]) if check else None


def calibrate(repository: Path, budget_s: float = DEFAULT_BUDGET_S, cpus: tuple[int, ...] | None = None,
              seconds: float = MEASURE_S, previous: Plan | None = None, cache: Path | None = None,
              runtime: str | None = None, precision: str | None = None) -> Plan:
    """The plan for serving `repository` on `cpus` (default: this process's cores) within `budget_s`, on the
    deployment's runtime and precision (`runtime`, `precision`, or the export's choices: `deployment_runtime`,
    `deployment_precision`, measured in that precision) — only layout, batch limit and queue bounds are measured:
    - `previous` (a restart by the same supervisor) is reused as it is while the machine facts are unchanged;
    - a plan stored in `cache` by an earlier start on the same machine facts, runtime and precision (and derived by
      today's rules, `PLAN_RULES`) is served at once (`source: cached`),
      so that a restart is ready within seconds; the caller checks it afterwards, off the critical path
      (`check_plan`), and drops it when the machine turned out slower or faster (`forget`);
    - otherwise everything is measured (~10 s), in a child pinned to the cores, and the plan stored in `cache`."""
    dep = deployment(repository, cpus, runtime, precision)
    facts = machine_facts(dep.machine)

    def same(p: Plan | None) -> bool:
        return (p is not None and p.source != "fixed" and p.budget_s == budget_s and p.machine == facts
                and p.runtime == dep.runtime and p.precision == dep.precision and p.rules == PLAN_RULES)

    if same(previous):
        return replace(previous, source="reused")
    stored = _load(cache)
    if same(stored):
        return replace(stored, source="cached", measure_s=0.0)
    return _measure(dep, budget_s, cpus is not None, seconds, cache)


def _measure(dep: Deployment, budget_s: float, pin: bool, seconds: float, cache: Path | None) -> Plan:
    """Measure every layout of the deployment's runtime and derive the plan (stored in `cache` for the next start)."""
    t0 = time.monotonic()
    costs, failed = _measure_in_child(dep, budget_s, seconds, pin, ["--runtimes", dep.runtime])
    if not costs:
        raise CalibrationError(f"the deployment's runtime ({dep.runtime}) could not run the model on this machine "
                               f"(serve every replica with another: --runtime): "
                               + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    plan = replace(derive(costs, budget_s, dep.cfg.max_batch_size, dep.machine, "measured", time.monotonic() - t0),
                   failed=failed)
    if cache is not None:
        try:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(cache).with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(plan.to_json())
            tmp.replace(cache)
        except OSError:  # a read-only cache only costs the next start its measurement
            pass
    return plan


def forget(cache: Path | None, plan: Plan) -> bool:
    """Remove the stored plan in `cache` if it is `plan` (a check found it no longer holds): the next start measures
    again. True when it was removed."""
    stored = _load(cache)
    if stored is None or replace(stored, source="x", measure_s=0.0) != replace(plan, source="x", measure_s=0.0):
        return False
    try:
        Path(cache).unlink()
        return True
    except OSError:
        return False


def _load(cache: Path | None) -> Plan | None:
    try:
        return Plan.from_json(Path(cache).read_text()) if cache else None
    except (OSError, ValueError, TypeError):
        return None


OPENVINO_CACHE_KEEP = 4  # models whose compiled OpenVINO blobs are kept (a few MB each for the shipped one)


def openvino_cache(root: Path, model_sha256: str, keep: int = OPENVINO_CACHE_KEEP) -> Path:
    """The folder where model.py keeps OpenVINO's compiled model of the model file with this digest: one folder per
    model under `root`, marked used now; the folders of all but the `keep` most recently used models are removed, so
    the cache stays bounded however many models (tests export a new one each session) were served."""
    root = Path(root)
    folder = root / model_sha256[:16]
    folder.mkdir(parents=True, exist_ok=True)
    os.utime(folder)
    used = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for d in used[keep:]:
        if d != folder:
            shutil.rmtree(d, ignore_errors=True)
    return folder


def apply_plan(cfg, plan: Plan, openvino_cache: str | None = None):
    """A copy of the CPU target's `cfg` (a ModelConfig) set to a start-up calibration's choices (`plan`: the
    `Limits` it chose, written by `write_limits`, and the measured cost as parameters for model.py and the clients).
    `openvino_cache`: a folder where model.py keeps OpenVINO's compiled model, so that a restart loads it in a
    fraction of the compile time."""
    from tritonclient.grpc import model_config_pb2 as mc

    from triton_repo.config import write_limits
    out = mc.ModelConfig()
    out.CopyFrom(cfg)
    if out.backend != "python":
        raise ValueError(f"calibration applies to the CPU target (backend python), not {out.backend or out.platform}")
    write_limits(out, plan)
    params = {"cost_per_image_s": f"{plan.per_image_s:.6g}", "cost_overhead_s": f"{plan.overhead_s:.6g}",
              "compute_reserve_s": f"{plan.compute_reserve_s:.6g}", "calibration": plan.to_json()}
    if openvino_cache:
        params["openvino_cache_dir"] = str(openvino_cache)
    for k, v in params.items():
        out.parameters[k].string_value = v
    return out


def write_served_repository(source: Path, dest: Path, plan: Plan, openvino_cache: Path | None = None) -> Path:
    """`source` copied to `dest` (hard links where possible) with the generator's config.pbtxt rewritten to `plan`:
    what tritonserver serves (and, given `openvino_cache`, where model.py keeps OpenVINO's compiled model for the
    next start). The source repository stays as exported."""
    from triton_repo.config_reader import config_text, parse_config
    from triton_repo.contract import MODEL_NAME
    source, dest = Path(source).resolve(), Path(dest)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, tmp, copy_function=link, ignore=shutil.ignore_patterns(".*"))
    cfg_file = tmp / MODEL_NAME / "config.pbtxt"
    cfg_file.unlink()  # a hard link: never write through it into the source repository
    cfg = apply_plan(parse_config((source / MODEL_NAME / "config.pbtxt").read_text()), plan,
                     str(Path(openvino_cache).resolve()) if openvino_cache else None)
    cfg_file.write_text(config_text(cfg))
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def remove_served_of_dead_processes(folder: Path) -> None:
    """The calibrated repository copies (`served-<pid>-...`) of supervisors that were killed before they could
    remove their own."""
    for d in folder.glob("served-*-*"):
        try:
            pid = int(d.name.split("-")[1])
        except ValueError:
            continue
        if not psutil.pid_exists(pid):
            shutil.rmtree(d, ignore_errors=True)
