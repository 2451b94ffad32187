"""Start-up calibration and deadline-aware execution against real tritonservers (serving/calibrate.py,
export/triton_model.py): the choices are visible in the log, the health JSON, the metrics and the served config; a
restart reuses them; model.py refuses what it cannot finish in time and computes oversized batches in chunks."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from loadtest.chaos import raw_inputs
from loadtest.triton_metrics import by_label, scrape
from serving.calibrate import Cost, calibrate, derive, write_served_repository
from serving.server import ServerConfig, TritonServer, free_port
from tests.e2e.conftest import wait_for as _wait

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _ready_json(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _serve(repo: Path, cwd: Path, *extra: str) -> tuple[subprocess.Popen, list[str], tuple[int, int, int]]:
    """`python -m serving` as a real process on free ports; returns once it printed its ready line."""
    g, m, h = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serving", "--repository", str(repo), "--grpc-port", str(g),
                             "--metrics-port", str(m), "--health-port", str(h), *extra],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SKETCHYGAN_RUNTIME": str(ROOT / ".cache" / "triton-runtime")})
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    _wait(lambda: any(l.startswith("ready:") for l in lines) or proc.poll() is not None, 120, "the server")
    assert proc.poll() is None, "".join(lines)
    return proc, lines, (g, m, h)


def _stop(proc: subprocess.Popen, lines: list[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, "".join(lines)


def test_serving_calibrates_at_start_shows_the_choices_everywhere_and_a_restart_reuses_them(exported, tmp_path):
    _, repo, _ = exported
    source_cfg = (repo / "sketchygan" / "config.pbtxt").read_text()
    first_core = sorted(os.sched_getaffinity(0))[0]
    cache = tmp_path / "calibration.json"
    args = ("--cpus", str(first_core), "--calibration-cache", str(cache))
    proc, lines, (g, m, h) = _serve(repo, tmp_path, *args)
    try:
        # one log line with the measured costs and the choices: one core, so one layout per runtime
        [line] = [l for l in lines if "calibration (measured" in l]
        assert "onnxruntime 1x1:" in line and "openvino 1x1:" in line and "ms/image" in line, line
        assert "1.0 cores" in line and "batches <=" in line and "queue timeout" in line, line
        code, health = _ready_json(h)
        plan = health["serving"]
        assert code == 200 and health["state"] == "ready" and plan["source"] == "measured"
        assert plan["instances"] == 1 and plan["threads"] == 1 and plan["machine"]["cpus"] == [first_core]
        assert {c["runtime"] for c in plan["costs"]} == {"onnxruntime", "openvino"}
        # the server runs what the plan says: its config, and the model processes on the given core only
        with grpcclient.InferenceServerClient(f"127.0.0.1:{g}") as c:
            cfg = c.get_model_config("sketchygan", as_json=True)["config"]
        params = {k: v["string_value"] for k, v in cfg["parameters"].items()}
        assert json.loads(params["calibration"]) == plan and params["runtime"] == plan["runtime"]
        policy = cfg["dynamic_batching"]["default_queue_policy"]
        assert int(policy["default_timeout_microseconds"]) == plan["queue_timeout_us"]
        assert int(policy["max_queue_size"]) == plan["max_queue_size"]
        server = next(p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "tritonserver")
        assert all(p.cpu_affinity() == [first_core] for p in [server] + server.children(recursive=True))
        # the client's health shows the same choices, read from the model config
        r = subprocess.run([sys.executable, "-m", "sketchygan_client.cli", "--url", f"127.0.0.1:{g}", "health"],
                           capture_output=True, text=True, timeout=60)
        shown = json.loads(r.stdout)["serving"]
        assert r.returncode == 0 and shown["batch_limit"] == plan["batch_limit"] and shown["runtime"] == plan["runtime"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{h}/metrics", timeout=5).read().decode()
        assert f'sketchygan_serving_plan{{setting="batch_limit"}} {float(plan["batch_limit"])}' in metrics
        assert f'runtime="{plan["runtime"]}",source="measured"' in metrics
        assert 'sketchygan_calibration_cost_seconds{layout="1x1",runtime="onnxruntime",term="per_image"}' in metrics
        # a crashed server is restarted with the same plan, not measured again
        server.kill()
        _wait(lambda: any("reusing the calibration" in l for l in lines), 120, "the restart")
        _wait(lambda: _ready_json(h)[0] == 200, 120, "ready again")
        assert _ready_json(h)[1]["serving"] == plan
        assert sum("calibration (measured" in l for l in lines) == 1
    finally:
        _stop(proc, lines)
    assert json.loads(cache.read_text()) == plan  # kept for the next start
    # the next start on the same machine: the stored plan, after a quick check instead of a full measurement
    proc, lines, (_, _, h) = _serve(repo, tmp_path, *args)
    try:
        assert any("calibration (cached" in l for l in lines), "".join(lines)
        again = _ready_json(h)[1]["serving"]
        assert again["source"] == "cached" and {**again, "source": "measured", "measure_s": 0} == \
            {**plan, "measure_s": 0}
    finally:
        _stop(proc, lines)
    assert (repo / "sketchygan" / "config.pbtxt").read_text() == source_cfg  # the export is never rewritten


def test_a_plan_is_reused_only_on_the_same_machine_and_a_stored_one_only_while_it_holds(exported, tmp_path):
    """Same cores: reused without measuring; other cores (another machine, as far as serving can tell): measured.
    A plan stored by an earlier start is taken after a quick check, unless the check finds the machine slower:
    busy loops on the core make it measure again."""
    from loadtest.cpu import busy_loops
    _, repo, _ = exported
    cores = sorted(os.sched_getaffinity(0))
    cache = tmp_path / "plan.json"
    first = calibrate(repo, cpus=(cores[0],), seconds=1.0, cache=cache)
    assert first.source == "measured" and first.machine["cpus"] == [cores[0]] and cache.is_file()
    again = calibrate(repo, cpus=(cores[0],), seconds=1.0, previous=first)
    assert again.source == "reused" and dataclasses.replace(again, source="measured") == first
    if len(cores) > 1:
        other = calibrate(repo, cpus=tuple(cores), seconds=1.0, previous=first)
        assert other.source == "measured" and other.machine["cpus"] == cores
    with busy_loops(3, (cores[0],)):  # a quarter of the core left: the quick check is far off the stored cost
        slowed = calibrate(repo, cpus=(cores[0],), seconds=1.0, cache=cache)
    assert slowed.source == "measured"
    assert slowed.batch_s(first.batch_limit) > 1.6 * first.batch_s(first.batch_limit)


@pytest.fixture(scope="module")
def deadline_server(exported, tmp_path_factory):
    """The tiny model served with a made-up plan: batches of at most 4 and a cost of 1 s per image, so that model.py's
    predictions are long (at least half that: it follows the machine down to half the calibrated cost) and its
    refusals deterministic."""
    _, repo, _ = exported
    plan = dataclasses.replace(derive([Cost("onnxruntime", 2, 1, 1.0, 0.0)], 60.0, 16), batch_limit=4)
    base = tmp_path_factory.mktemp("deadline")
    served = write_served_repository(repo, base / "repo", plan)
    srv = TritonServer(ServerConfig(repository=served, grpc_port=free_port(), metrics_port=free_port()),
                       log_path=base / "server.log").start()
    yield srv
    srv.stop()


def _one(res: int = 32, nd: int = 8, n: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, res, res), dtype=np.uint8), rng.integers(0, 4, (n, 1)).astype(np.int32),
            rng.standard_normal((n, nd)).astype(np.float32))


def test_model_refuses_what_it_cannot_finish_by_the_callers_deadline(deadline_server):
    srv = deadline_server
    url = srv.metrics_url
    late0 = by_label(url, "sketchygan_requests_skipped", "reason").get("late", 0.0)
    images0 = scrape(url).get("sketchygan_images_computed", 0.0)
    with grpcclient.InferenceServerClient(srv.grpc_url) as c:
        for deadline in (time.time() - 1.0, time.time() + 0.2):  # already gone; too soon for >= 0.5 s of compute
            with pytest.raises(InferenceServerException) as e:
                c.infer("sketchygan", raw_inputs(*_one()), client_timeout=30,
                        parameters={"deadline_unix_us": int(deadline * 1e6)})
            assert "UNAVAILABLE" in str(e.value.status()) and "after its deadline" in e.value.message()
        # time enough, no deadline, a deadline that is not a number, or one from a clock set hours wrong: computed
        ok = [c.infer("sketchygan", raw_inputs(*_one()), client_timeout=30, parameters=p)
              for p in ({"deadline_unix_us": int((time.time() + 60) * 1e6)}, None, {"deadline_unix_us": "soon"},
                        {"deadline_unix_us": int((time.time() - 7200) * 1e6)})]
    assert all(r.as_numpy("IMAGE").shape == (1, 32, 32, 3) for r in ok)
    assert by_label(url, "sketchygan_requests_skipped", "reason")["late"] == late0 + 2
    assert scrape(url)["sketchygan_images_computed"] == images0 + 4  # nothing computed for the refused two


def test_an_oversized_batch_is_computed_in_chunks_with_the_same_pixels(deadline_server):
    """16 images in one request, batch limit 4: four chunks, the same images as one request per image (+-1)."""
    srv = deadline_server
    sk, cid, z = _one(n=16, seed=3)
    before = scrape(srv.metrics_url)
    with grpcclient.InferenceServerClient(srv.grpc_url) as c:
        whole = c.infer("sketchygan", raw_inputs(sk, cid, z), client_timeout=60).as_numpy("IMAGE")
        singles = np.concatenate([c.infer("sketchygan", raw_inputs(sk[i:i + 1], cid[i:i + 1], z[i:i + 1]),
                                          client_timeout=60).as_numpy("IMAGE") for i in range(16)])
    assert whole.shape == (16, 32, 32, 3)
    assert np.abs(whole.astype(int) - singles.astype(int)).max() <= 1
    assert scrape(srv.metrics_url)["sketchygan_images_computed"] - before.get("sketchygan_images_computed", 0) == 32


def test_the_client_sends_its_deadline_and_uses_the_servers_measured_reserve(deadline_server):
    from sketchygan_client import SketchClient
    from sketchygan_client.errors import SketchClientError
    srv = deadline_server
    url = srv.metrics_url
    with SketchClient(srv.grpc_url) as c:
        params = json.loads(json.dumps(c.info.serving))
        assert c.info.compute_reserve_s == pytest.approx(2 * (params["per_image_s"] * 4 + params["overhead_s"]),
                                                         rel=1e-3)
        assert c.generate_array(np.full((32, 32), 255, np.uint8), 0, seed=1).shape == (32, 32, 3)
        late0 = by_label(url, "sketchygan_requests_skipped", "reason").get("late", 0.0)
        with pytest.raises(SketchClientError):  # 0.2 s cannot fit >= 0.5 s of predicted compute: refused, not run
            c.generate_array(np.full((32, 32), 255, np.uint8), 0, seed=1, timeout_s=0.2)
    assert by_label(url, "sketchygan_requests_skipped", "reason").get("late", 0.0) >= late0 + 1
