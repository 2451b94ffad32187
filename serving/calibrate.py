"""Start-up calibration: measure what this machine can do with the served model.onnx, and derive the serving limits
from it as *time* instead of constants tuned on some other machine.

`python -m serving` runs it before tritonserver loads the model (`--calibrate on`, the default):
1. the cores the server may use: its CPU affinity, capped by a cgroup CPU quota (`usable_cores`);
2. in a child process pinned to those cores (so it sees the machine as the server will, busy neighbours included),
   for each CPU runtime (onnxruntime, OpenVINO) and layout (k single-threaded instances running at once, or one
   instance with k threads), the time of a batch of n images, fitted as `a·n + b` (`measure`, `fit`);
3. `derive`: the runtime and layout with the most throughput, the largest batch whose compute fits a quarter of the
   latency budget, the queue timeout (budget minus two batch times: the batch ahead of a request, then its own),
   and the queue size (long enough that past capacity requests are refused after waiting out the timeout, not at
   once: what the measured rate drains within the timeout, times the overload it should absorb so);
4. `write_served_repository`: a copy of the model repository (hard links) whose config.pbtxt carries the choices;
   model.py and the client read the measured cost from its parameters.
The budget (`--budget-ms`, default 300) is the time a request may spend queued and computing; callers with
deadlines of 0.5 s keep the rest for the network and scheduling noise. docs/reliability.md has the derivation and
the figures measured on the machines of this project.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from serving.server import launch_command
from triton_repo.runtimes import CPU_RUNTIMES

DEFAULT_BUDGET_S = 0.3
MEASURE_S = 6.0  # measuring time in the child, all runtimes and layouts together (imports and compiles come on top)
MEASURE_TIMEOUT_S = 60.0  # the child must finish long before this
SIZES = (1, 2, 4, 8, 16, 32)
OVERLOAD_FACTOR = 32  # the queue holds this many times what the measured rate drains within the queue timeout ...
MIN_QUEUE = 256  # ... and at least this many requests (a few KiB each at 64 px)
MIN_REPS, MIN_SIZE_S = 5, 0.1  # per batch size: at least this many runs per instance and this long
WARMUP_RUNS = 3  # untimed runs per instance before each batch size
TIE_MARGIN = 1.1  # a later runtime/layout must beat the best so far by 10 % to be chosen
# a stored plan is served at once; after the server is ready, a quick re-measurement (CHECK_S of its layout at its
# batch limit, while the server is idle) must be within 1/1.6x .. 1.6x of it: wide enough for run-to-run noise (up
# to ~1.5x on millisecond batches), narrow enough for what matters (a core shared with busy loops is ~3x slower)
CHECK_S, CHECK_TOLERANCE = 1.0, 1.6
CHILD = "import sys; from serving.calibrate import child_main; sys.exit(child_main(sys.argv[1:]))"


class CalibrationError(RuntimeError):
    """The machine could not be measured (the model does not run, or the measurement timed out)."""


# ---------------------------------------------------------------------------------------------- the machine

def cgroup_quota_cores(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU cores allowed by the cgroup's quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def cpu_model_and_flags() -> tuple[str, str]:
    """(CPU model name, its flags) from /proc/cpuinfo (platform's answer / '' where it cannot be read)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info.get("model name") or platform.processor() or "unknown", info.get("flags") or info.get("Features", "")


@dataclass(frozen=True)
class Machine:
    """What the measurements depend on; a restart reuses a plan only while this is unchanged."""

    cpu_model: str
    isa: str  # the widest vector extension: avx512, avx2, avx, neon, ...
    cpus: tuple[int, ...]  # the cores the server may run on (affinity)
    quota_cores: float | None  # cgroup CPU quota, None when unlimited
    onnx_sha256: str

    @property
    def usable_cores(self) -> float:
        n = float(len(self.cpus))
        return min(n, self.quota_cores) if self.quota_cores else n


def widest_isa(flags: str) -> str:
    have = set(flags.split())
    for isa in ("avx512f", "avx2", "avx", "asimd", "neon"):
        if isa in have:
            return isa.removesuffix("f")
    return "baseline"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def cpu_facts(flags: bool = True) -> dict:
    """The CPU that figures were measured on, for reports: model, widest vector extension, cores (and its flags
    unless `flags` is False)."""
    name, all_flags = cpu_model_and_flags()
    facts = {"model": name, "isa": widest_isa(all_flags), "cores": len(os.sched_getaffinity(0))}
    return {**facts, "flags": all_flags} if flags else facts


def this_machine(onnx_path: Path, cpus: tuple[int, ...] | None = None) -> Machine:
    name, flags = cpu_model_and_flags()
    cores = tuple(sorted(cpus if cpus is not None else os.sched_getaffinity(0)))
    return Machine(name, widest_isa(flags), cores, cgroup_quota_cores(), file_sha256(onnx_path))


# ---------------------------------------------------------------------------------------------- costs

@dataclass(frozen=True)
class Cost:
    """Seconds for one instance to compute a batch of n images, `per_image_s·n + overhead_s`, while `instances`
    instances of `threads` threads each run at once (measured points kept for the report)."""

    runtime: str
    instances: int
    threads: int
    per_image_s: float
    overhead_s: float
    points: tuple[tuple[int, float], ...] = ()

    def batch_s(self, n: int) -> float:
        return self.per_image_s * n + self.overhead_s

    @property
    def layout(self) -> str:
        return f"{self.instances}x{self.threads}"


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares `a·n + b` through (n, seconds), a > 0 and b >= 0 (one point: b = 0)."""
    ns = np.array([p[0] for p in points], float)
    ts = np.array([p[1] for p in points], float)
    if len(set(ns)) < 2:
        return float(ts.mean() / ns.mean()), 0.0
    a, b = np.polyfit(ns, ts, 1)
    if b < 0:  # overhead cannot be negative: refit through the origin
        a, b = float((ns @ ts) / (ns @ ns)), 0.0
    if a <= 0:
        a = float(ts.max() / ns.max())
    return float(a), float(b)


def measure(onnx_path: Path, runtime: str, instances: int, threads: int, budget_s: float,
            contract: tuple[int, int, int], seconds: float, sizes: tuple[int, ...] = SIZES,
            min_size_s: float = MIN_SIZE_S) -> Cost:
    """Time batches of 1, 2, 4, ... images with `instances` sessions running at once (one Python thread each),
    in at most ~`seconds`; stops growing the batch once one takes more than half the budget."""
    from triton_repo.runtimes import random_inputs, runner
    res, nd, nc = contract
    runs = [runner(runtime, onnx_path, threads) for _ in range(instances)]
    points: list[tuple[int, float]] = []
    t_end = time.monotonic() + seconds
    for n in sizes:
        x = random_inputs(n, res, nd, nc, seed=n)
        for run in runs:
            for _ in range(WARMUP_RUNS):
                run(*x)  # warm-up: first runs allocate and pick kernels
        times: list[list[float]] = [[] for _ in runs]
        stop = threading.Event()
        per_size_end = min(t_end, time.monotonic() + seconds / len(sizes))

        size_start = time.monotonic()

        def work(i: int) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                runs[i](*x)
                times[i].append(time.perf_counter() - t0)
                now = time.monotonic()
                if len(times[i]) >= MIN_REPS and (now - size_start >= min_size_s or now > per_size_end):
                    break

        threads_ = [threading.Thread(target=work, args=(i,)) for i in range(instances)]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join()
        stop.set()
        batch_s = statistics.median([s for ts in times for s in ts])
        points.append((n, batch_s))
        if batch_s > budget_s / 2 or time.monotonic() > t_end:
            break
    a, b = fit(points)
    return Cost(runtime, instances, threads, a, b, tuple((n, round(s, 6)) for n, s in points))


def layouts(cores: float) -> list[tuple[int, int]]:
    """(instances, threads) to measure: one single-threaded instance per usable core, and, with several cores, one
    instance using them all."""
    k = max(1, int(cores + 0.5))
    return [(k, 1)] + ([(1, k)] if k > 1 else [])


# ---------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Plan:
    """What serving uses: the chosen runtime/layout, the batch limit and queue bounds, and the evidence."""

    runtime: str
    instances: int
    threads: int
    batch_limit: int
    queue_timeout_us: int
    max_queue_size: int
    per_image_s: float
    overhead_s: float
    budget_s: float
    rate_rps: float  # images/s all instances together at the batch limit, as measured
    source: str  # "measured"; "reused" (a restart, same machine facts); "cached" (stored by an earlier start on the
    # same machine facts, served at once and checked after ready); "fixed" (--calibrate off)
    machine: dict = field(default_factory=dict)
    costs: list[dict] = field(default_factory=list)  # every runtime/layout measured
    measure_s: float = 0.0
    failed: dict = field(default_factory=dict)  # runtime -> why it could not be measured (not a candidate)

    def batch_s(self, n: int) -> float:
        return self.per_image_s * n + self.overhead_s

    @property
    def compute_reserve_s(self) -> float:
        """What a request needs beyond its queue wait: the batch ahead of it on its instance, then its own."""
        return 2 * self.batch_s(self.batch_limit)

    def summary(self) -> str:
        measured = "; ".join(f"{c['runtime']} {c['layout']}: {1e3 * c['per_image_s']:.2f} ms/image + "
                             f"{1e3 * c['overhead_s']:.2f} ms" for c in self.costs)
        measured += "".join(f"; {k} failed ({v})" for k, v in self.failed.items())
        return (f"calibration ({self.source}, {self.measure_s:.1f} s; {self.machine.get('cpu_model', '?')}, "
                f"{self.machine.get('isa', '?')}, {self.machine.get('usable_cores', '?')} cores): {measured or 'none'}"
                f" -> {self.runtime} {self.instances}x{self.threads}, batches <= {self.batch_limit} "
                f"({1e3 * self.batch_s(self.batch_limit):.0f} ms), queue timeout {self.queue_timeout_us / 1e3:.0f} ms, "
                f"queue <= {self.max_queue_size}, ~{self.rate_rps:.0f} images/s, budget {1e3 * self.budget_s:.0f} ms")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls(**json.loads(text))


def derive(costs: list[Cost], budget_s: float, max_batch_size: int, machine: Machine | None = None,
           source: str = "measured", measure_s: float = 0.0) -> Plan:
    """The plan with the most throughput within `budget_s` among the measured runtimes and layouts."""
    if not costs:
        raise CalibrationError("no runtime could be measured")
    if budget_s <= 0:
        raise ValueError(f"budget must be positive, got {budget_s}")
    best = None
    for c in costs:
        m = 1
        while m < max_batch_size and c.batch_s(m + 1) <= budget_s / 4:
            m += 1
        rate = c.instances * m / c.batch_s(m)
        # several single-threaded instances (measured first) unless one multi-threaded instance is clearly faster:
        # they keep serving when one model process dies, and the choice does not flip on noise
        if best is None or rate > best[2] * TIE_MARGIN:
            best = (c, m, rate)
    c, m, rate = best
    batch = c.batch_s(m)
    # a request taken from the queue after waiting the timeout may still wait for its instance's current batch, then
    # runs its own: the timeout leaves both inside the budget (at least a quarter of it stays for queueing)
    timeout_s = max(budget_s - 2 * batch, budget_s / 4)
    # The size only decides when refusals come at once instead of after the timeout: a full queue answers at once,
    # and callers that retry at once then spin on refusals, costing CPU on both sides (measured: goodput 0.08 of
    # capacity with a queue of what the rate drains in the timeout, 1.19 with a long one). So refusals wait out the
    # timeout up to OVERLOAD_FACTOR x what the measured rate drains within it, and never for fewer than MIN_QUEUE.
    queue = max(MIN_QUEUE, math.ceil(OVERLOAD_FACTOR * rate * timeout_s))
    return Plan(c.runtime, c.instances, c.threads, m, int(timeout_s * 1e6), queue, c.per_image_s, c.overhead_s,
                budget_s, round(rate, 1), source, machine_facts(machine) if machine else {},
                _plain([{**asdict(x), "layout": x.layout} for x in costs]), round(measure_s, 2))


def _plain(value):
    """As it reads back from JSON (tuples become lists), so that a plan compares equal to its stored copy."""
    return json.loads(json.dumps(value))


def machine_facts(machine: Machine) -> dict:
    return _plain({**asdict(machine), "usable_cores": machine.usable_cores})


def fixed_plan(repository: Path, budget_s: float = DEFAULT_BUDGET_S) -> Plan:
    """`--calibrate off`: the exported config's fixed values as a plan with no measured cost (model.py then predicts
    nothing and only skips cancelled requests)."""
    cfg, _ = model_files(repository)
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    policy = cfg.dynamic_batching.default_queue_policy
    return Plan(params.get("runtime", "onnxruntime"), sum(g.count for g in cfg.instance_group) or 1,
                int(params.get("intra_op_threads", "1")), cfg.max_batch_size, policy.default_timeout_microseconds,
                policy.max_queue_size, 0.0, 0.0, budget_s, 0.0, "fixed")


# ---------------------------------------------------------------------------------------------- running it

def deployment_runtime(cfg, runtime: str | None = None) -> str:
    """The runtime a deployment serves with: `runtime` when the operator pins one, else the one its export chose
    (config.pbtxt's `runtime`). Never re-decided by a start: the runtime decides the pixels (OpenVINO and ONNX
    Runtime differ by up to 26 grey levels), and every replica of a deployment must answer alike."""
    chosen = runtime or (cfg.parameters["runtime"].string_value if "runtime" in cfg.parameters else None)
    if chosen not in CPU_RUNTIMES:
        raise CalibrationError(f"unknown runtime {chosen!r}: pin one of {list(CPU_RUNTIMES)} (--runtime) or "
                               f"re-export the model (its config.pbtxt names none)")
    return chosen


def model_files(repository: Path):
    """(parsed config.pbtxt, path of model.onnx) of the generator in `repository`."""
    from triton_repo.config import parse_config
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


def run_measurements(onnx_path: Path, contract: tuple[int, int, int], cores: float, budget_s: float,
                     seconds: float = MEASURE_S, only: tuple[str, int, int] | None = None,
                     sizes: tuple[int, ...] = SIZES, min_size_s: float = MIN_SIZE_S,
                     runtimes: tuple[str, ...] = CPU_RUNTIMES) -> tuple[list[Cost], dict[str, str]]:
    """Every layout of `runtimes` (or `only` one runtime and layout), in this process (what the child of `calibrate`
    runs); also the runtimes that failed, with why."""
    combos = [only] if only else [(r, k, t) for r in runtimes for k, t in layouts(cores)]
    out, failed = [], {}
    for runtime, k, t in combos:
        if runtime in failed:
            continue
        try:
            out.append(measure(onnx_path, runtime, k, t, budget_s, contract, seconds / len(combos), sizes,
                               min_size_s))
        except Exception as e:  # noqa: BLE001 — a runtime that is missing or cannot run this model is no candidate
            failed[runtime] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return out, failed


class Interrupted(Exception):
    """A measurement was ended early because its caller asked (`cancel`): the server got work meanwhile."""


def _measure_in_child(onnx: Path, contract: tuple[int, int, int], machine: Machine, budget_s: float,
                      seconds: float, pin: bool, extra: list[str] = (),
                      cancel: Callable[[], bool] | None = None) -> tuple[list[Cost], dict[str, str]]:
    """`run_measurements` in a child process pinned to the machine's cores (it sees them as the server will).
    `cancel`, polled every 50 ms, ends the child at once when it returns True (`Interrupted`)."""
    child = [sys.executable, "-c", CHILD, "--onnx", str(onnx), "--contract", ",".join(map(str, contract)),
             "--cores", str(machine.usable_cores), "--budget-s", str(budget_s), "--seconds", str(seconds), *extra]
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


@dataclass(frozen=True)
class Check:
    """A quick re-measurement of a stored plan: its layout timed at its batch limit, as a ratio to the plan's cost
    (> 1: the machine is slower now than when the plan was measured)."""

    batch: int
    seconds: float
    planned_s: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.planned_s

    @property
    def holds(self) -> bool:
        return 1 / CHECK_TOLERANCE <= self.ratio <= CHECK_TOLERANCE


def still_holds(plan: Plan, check: Cost) -> Check | None:
    """The verdict on `plan` from `check`, a re-measurement at its batch limit (None when nothing was timed)."""
    if not check.points:
        return None
    n, seconds = check.points[-1]
    return Check(int(n), float(seconds), plan.batch_s(n))


def check_plan(repository: Path, plan: Plan, cpus: tuple[int, ...] | None = None,
               cancel: Callable[[], bool] | None = None) -> Check | None:
    """Time `plan`'s runtime and layout at its batch limit (~1-2 s, in a child pinned like the server) and compare it
    with the plan's cost; None when the runtime could not run. What the supervisor does after serving a stored plan,
    with `cancel` saying when the server got work (the child is then ended at once: `Interrupted`)."""
    from triton_repo.config import contract_from_config
    cfg, onnx = model_files(repository)
    c = contract_from_config(cfg)
    machine = this_machine(onnx, cpus)
    check, _ = _measure_in_child(onnx, (c.resolution, c.noise_dim, c.num_classes), machine, plan.budget_s, CHECK_S,
                                 cpus is not None, ["--only", f"{plan.runtime}:{plan.instances}x{plan.threads}",
                                                    "--sizes", str(plan.batch_limit),
                                                    "--min-size-s", str(CHECK_S / 2)], cancel)
    return still_holds(plan, check[0]) if check else None


def calibrate(repository: Path, budget_s: float = DEFAULT_BUDGET_S, cpus: tuple[int, ...] | None = None,
              seconds: float = MEASURE_S, previous: Plan | None = None, cache: Path | None = None,
              runtime: str | None = None) -> Plan:
    """The plan for serving `repository` on `cpus` (default: this process's cores) within `budget_s`, on the
    deployment's runtime (`runtime`, or the export's choice: `deployment_runtime`) — only layout, batch limit and
    queue bounds are measured:
    - `previous` (a restart by the same supervisor) is reused as it is while the machine facts are unchanged;
    - a plan stored in `cache` by an earlier start on the same machine facts is served at once (`source: cached`),
      so that a restart is ready within seconds; the caller checks it afterwards, off the critical path
      (`check_plan`), and drops it when the machine turned out slower or faster (`forget`);
    - otherwise everything is measured (~10 s), in a child pinned to the cores, and the plan stored in `cache`."""
    cfg, onnx = model_files(repository)
    runtime = deployment_runtime(cfg, runtime)
    machine = this_machine(onnx, cpus)
    facts = machine_facts(machine)

    def same(p: Plan | None) -> bool:
        return (p is not None and p.source != "fixed" and p.budget_s == budget_s and p.machine == facts
                and p.runtime == runtime)

    if same(previous):
        return replace(previous, source="reused")
    stored = _load(cache)
    if same(stored):
        return replace(stored, source="cached", measure_s=0.0)
    return measure_plan(repository, budget_s, cpus, seconds, cache, runtime)


def measure_plan(repository: Path, budget_s: float = DEFAULT_BUDGET_S, cpus: tuple[int, ...] | None = None,
                 seconds: float = MEASURE_S, cache: Path | None = None, runtime: str | None = None) -> Plan:
    """Measure every layout of the deployment's runtime on `cpus` and derive the plan (stored in `cache` for the
    next start)."""
    from triton_repo.config import contract_from_config
    cfg, onnx = model_files(repository)
    runtime = deployment_runtime(cfg, runtime)
    machine = this_machine(onnx, cpus)
    c = contract_from_config(cfg)
    t0 = time.monotonic()
    costs, failed = _measure_in_child(onnx, (c.resolution, c.noise_dim, c.num_classes), machine, budget_s, seconds,
                                      cpus is not None, ["--runtimes", runtime])
    if not costs:
        raise CalibrationError(f"the deployment's runtime ({runtime}) could not run the model on this machine (serve "
                               f"every replica with another: --runtime): "
                               + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    plan = replace(derive(costs, budget_s, cfg.max_batch_size, machine, "measured", time.monotonic() - t0),
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


def write_served_repository(source: Path, dest: Path, plan: Plan, openvino_cache: Path | None = None) -> Path:
    """`source` copied to `dest` (hard links where possible) with the generator's config.pbtxt rewritten to `plan`:
    what tritonserver serves (and, given `openvino_cache`, where model.py keeps OpenVINO's compiled model for the
    next start). The source repository stays as exported."""
    from triton_repo.config import apply_plan, config_text, parse_config
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


def child_main(argv: list[str] | None = None) -> int:
    """The measuring child (`calibrate` starts it pinned to the server's cores): prints the costs as JSON."""
    ap = argparse.ArgumentParser(prog="serving.calibrate child")
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--contract", required=True, help="resolution,noise_dim,num_classes")
    ap.add_argument("--cores", type=float, required=True)
    ap.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    ap.add_argument("--seconds", type=float, default=MEASURE_S)
    ap.add_argument("--only", help="RUNTIME:IxT, one runtime and layout (the quick check of a stored plan)")
    ap.add_argument("--runtimes", default=",".join(CPU_RUNTIMES), help="runtimes to measure, comma list")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="batch sizes, comma list")
    ap.add_argument("--min-size-s", type=float, default=MIN_SIZE_S, help="time each batch size at least this long")
    a = ap.parse_args(argv)
    contract = tuple(int(v) for v in a.contract.split(","))
    only = None
    if a.only:
        runtime, layout = a.only.split(":")
        k, t = layout.split("x")
        only = (runtime, int(k), int(t))
    costs, failed = run_measurements(a.onnx, contract, a.cores, a.budget_s, a.seconds, only,
                                     tuple(int(n) for n in a.sizes.split(",")), a.min_size_s,
                                     tuple(a.runtimes.split(",")))
    print(json.dumps({"costs": [asdict(c) for c in costs], "failed": failed}))
    return 0
