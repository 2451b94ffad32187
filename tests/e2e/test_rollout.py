"""A new model version rolled onto a running `python -m serving` under load, and rolled back, on a real tritonserver:
no caller sees a failure, every caller's receipts switch exactly once per switch, a batch never mixes versions, the
version already loaded is not reloaded while the new one loads (the case of triton-inference-server/server #7527),
the scorer and drain models are untouched, and bad checkpoints are refused before any caller sees them."""
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from serving.process import file_tail
from serving.stubs import stubs_of
from tests.e2e.conftest import ready_json, serve, stop_serving, wait_for
from training import checkpoint as ckpt

CALLERS = 8  # project clients: 7 single images, 1 batch of more than max_batch_size


def _variant(src: Path, dst: Path, change) -> Path:
    """A copy of checkpoint `src` with `change(tensors, meta)` applied, saved as a real checkpoint (new sha256)."""
    tensors, meta = ckpt.load(src)
    change(tensors, meta)
    meta = {k: v for k, v in meta.items() if k not in ("sha256", "format")}
    ckpt.save(dst, tensors, meta)
    return dst


def _scaled(tensors, meta):
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim == 4)
    tensors[name] = tensors[name] * 1.5


def _nan(tensors, meta):
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim == 4)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")


def _renamed_class(tensors, meta):
    meta["class_names"] = ["other"] + list(meta["class_names"][1:])


def _result(r: subprocess.CompletedProcess) -> dict:
    """The JSON a serving command prints last (after its progress lines)."""
    return json.loads(r.stdout[r.stdout.index("{\n"):])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _why(r: subprocess.CompletedProcess, cwd: Path) -> str:
    """A failed command's output with the tails of the serving and tritonserver logs: what a CI failure needs."""
    tails = [f"--- {p.name}:\n{file_tail(p, 40)}"
             for p in (*cwd.glob("serving-*.log"), *cwd.glob(".cache/tritonserver-*.log"))]
    return "\n".join([r.stdout, r.stderr, *tails])


class Caller(threading.Thread):
    """A closed loop of calls recording (version, checkpoint) of every answer, and every failure."""

    def __init__(self, url: str, kind: str, sketch: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.url, self.kind, self.sketch = url, kind, sketch
        self.seen: list[tuple[str, str]] = []
        self.batches: list[set[tuple[str, str]]] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        if self.kind == "raw":
            return self._raw()
        from sketchygan_client import SketchClient
        with SketchClient(self.url, timeout_s=30) as c:
            seed = 0
            while not self.stop.is_set():
                seed += 1
                try:
                    if self.kind == "batch":
                        _, receipts = c.generate_batch_explained([self.sketch] * 40, [0] * 40, list(range(40)))
                        who = {(r.model_version, r.checkpoint_sha256) for r in receipts}
                        self.batches.append(who)
                        self.seen.append(sorted(who)[0])
                    else:
                        _, r = c.generate_explained(self.sketch, 0, seed=seed % 3, score=False)
                        self.seen.append((r.model_version, r.checkpoint_sha256))
                except Exception as e:  # noqa: BLE001 — every failure is a finding
                    self.failures.append(f"{type(e).__name__}: {e}")

    def _raw(self) -> None:
        import tritonclient.grpc as grpcclient
        c = grpcclient.InferenceServerClient(self.url)
        ins = [grpcclient.InferInput("SKETCH", [1, *self.sketch.shape], "UINT8"),
               grpcclient.InferInput("CLASS_ID", [1, 1], "INT32"), None]
        ins[0].set_data_from_numpy(self.sketch[None])
        ins[1].set_data_from_numpy(np.zeros((1, 1), np.int32))
        dim = int(json.loads(c.get_model_config("sketchygan", as_json=True)["config"]["parameters"]["noise_dim"]
                             ["string_value"]))
        ins[2] = grpcclient.InferInput("NOISE", [1, dim], "FP32")
        ins[2].set_data_from_numpy(np.zeros((1, dim), np.float32))  # the same request each time: the cache's case
        try:
            while not self.stop.is_set():
                try:
                    res = c.infer("sketchygan", ins, client_timeout=30)
                    self.seen.append((res.get_response().model_version, res.as_numpy("CHECKPOINT")[0, 0].decode()))
                except Exception as e:  # noqa: BLE001
                    self.failures.append(f"{type(e).__name__}: {e}")
        finally:
            c.close()


def _switches(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The distinct answers in the order a caller met them, repeats collapsed."""
    out: list[tuple[str, str]] = []
    for s in seen:
        if not out or out[-1] != s:
            out.append(s)
    return out


def _started(log_text: str, model: str) -> int:
    """How many model processes of `model` tritonserver's log says it started (a version loaded or reloaded starts
    one per instance; a load request that leaves a version as it is logs "loading: model:N" but starts none)."""
    return log_text.count(f"TRITONBACKEND_ModelInstanceInitialize: {model}_0_")


@pytest.fixture()
def rolling(exported, tmp_path):
    """`python -m serving` on a copy of the tiny repository (rollouts write into the repository it serves),
    calibration off, its control socket at the default place for its port."""
    _, repo, _ = exported
    served = tmp_path / "repo"
    shutil.copytree(repo, served)
    proc, lines, ports = serve(served, tmp_path, "--calibrate", "off", "--response-cache-mb", "16")
    yield proc, lines, ports, tmp_path
    if proc.poll() is None:
        stop_serving(proc, lines)


def test_rollout_and_rollback_under_load_fail_no_call(rolling, tiny_checkpoint, tmp_path):
    proc, lines, (g, _, h), cwd = rolling
    url = f"127.0.0.1:{g}"
    old_sha = ckpt.sha256_file(tiny_checkpoint)
    new = _variant(tiny_checkpoint, tmp_path / "new" / "generator.safetensors", _scaled)
    new_sha = ckpt.sha256_file(new)
    server_pid = next(p.pid for p in __import__("psutil").Process(proc.pid).children(recursive=True)
                      if p.name() == "tritonserver")
    others = {(s.model, s.pid) for s in stubs_of(server_pid) if s.model != "sketchygan"}
    assert {m for m, _ in others} == {"sketchygan_score", "sketchygan_drain"}
    log = cwd / ".cache" / f"tritonserver-{g}.log"
    from sketchygan_client import SketchClient
    with SketchClient(url) as c:
        side = c.info.resolution
    sketch = np.full((side, side), 255, np.uint8)
    sketch[side // 4:side // 2, side // 4:side // 2] = 0
    callers = [Caller(url, "batch" if i == 0 else "single", sketch) for i in range(CALLERS)]
    callers.append(Caller(url, "raw", sketch))
    for c in callers:
        c.start()
    try:
        wait_for(lambda: all(c.seen for c in callers), 60, "every caller answered by version 1")

        # bad checkpoints: refused with the reason, before any caller sees them
        bad = {"NaN": _variant(tiny_checkpoint, tmp_path / "nan" / "generator.safetensors", _nan),
               "'class_names' differs": _variant(tiny_checkpoint, tmp_path / "cls" / "generator.safetensors",
                                                 _renamed_class)}
        junk = tmp_path / "junk" / "generator.safetensors"
        junk.parent.mkdir()
        junk.write_text("not a checkpoint")
        shutil.copyfile(ckpt.sidecar_path(tiny_checkpoint), ckpt.sidecar_path(junk))
        bad["not a generator checkpoint"] = junk
        for why, path in bad.items():
            r = _cli("rollout", "--checkpoint", str(path), "--url", url, cwd=cwd)
            assert r.returncode != 0 and why in r.stderr and "nothing changed" in r.stderr, (why, r.stdout, r.stderr)

        # the model-control API stays closed to callers: without the supervisor's key a load or unload is refused
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
        with grpcclient.InferenceServerClient(url) as raw:
            for call in (lambda: raw.unload_model("sketchygan"), lambda: raw.load_model("sketchygan")):
                with pytest.raises(InferenceServerException, match="restricted|protocol|not allowed|key"):
                    call()

        r = _cli("rollout", "--checkpoint", str(new), "--url", url, cwd=cwd)
        assert r.returncode == 0, _why(r, cwd)
        done = _result(r)
        assert done["from"] == [1] and done["to"] == 2 and done["served"] == [2], done
        assert done["parity"]["passed"], done
        assert ready_json(h)[1]["model_versions"] == [2]
        wait_for(lambda: all(c.seen[-1] == ("2", new_sha) for c in callers), 60, "every caller answered by v2")

        r = _cli("rollback", "--url", url, cwd=cwd)
        assert r.returncode == 0, _why(r, cwd)
        assert _result(r)["to"] == 1
        wait_for(lambda: all(c.seen[-1] == ("1", old_sha) for c in callers), 60, "every caller answered by v1")
    finally:
        for c in callers:
            c.stop.set()
        for c in callers:
            c.join(60)

    for c in callers:
        assert not c.failures, (c.kind, c.failures[:3])
        assert _switches(c.seen) == [("1", old_sha), ("2", new_sha), ("1", old_sha)], (c.kind, _switches(c.seen))
    assert all(len(b) == 1 for b in callers[0].batches), [b for b in callers[0].batches if len(b) > 1]
    # the generator's 2 model processes started 3 times: at start (v1), for v2, for v1 again. Had Triton reloaded v1
    # while v2 loaded beside it (the case of #7527), or v2 when v1 was retired, there would be more
    text = wait_for(lambda: (t := log.read_text()).count("successfully unloaded 'sketchygan' version 2") and t, 60,
                    "tritonserver to log version 2's unload")
    assert _started(text, "sketchygan") == 6, text[-4000:]
    assert text.count("successfully unloaded 'sketchygan' version 1") == 1
    assert text.count("successfully unloaded 'sketchygan' version 2") == 1
    # the scorer and the drain barrier never reloaded: the same processes serve them
    assert {(s.model, s.pid) for s in stubs_of(server_pid) if s.model != "sketchygan"} == others
    assert _started(text, "sketchygan_score") == 1 and _started(text, "sketchygan_drain") == 1
    versions = _result(_cli("versions", "--url", url, cwd=cwd))
    assert versions["served"] == [1] and versions["on_disk"] == {"1": old_sha, "2": new_sha}


def test_a_canary_gets_its_share_through_the_gateway_and_is_promoted(rolling, tiny_checkpoint, tmp_path):
    import collections
    import urllib.error
    import urllib.request

    from tests.e2e.conftest import start_gateway
    from web.app import _png
    proc, lines, (g, _, h), cwd = rolling
    url = f"127.0.0.1:{g}"
    new = _variant(tiny_checkpoint, tmp_path / "new" / "generator.safetensors", _scaled)
    r = _cli("rollout", "--checkpoint", str(new), "--url", url, "--canary", cwd=cwd)
    assert r.returncode == 0, _why(r, cwd)
    assert _result(r)["served"] == [1, 2]
    gw = start_gateway(url, tmp_path / "gateway.log", "--canary-percent", "25").wait()
    try:
        from sketchygan_client import SketchClient
        with SketchClient(url) as c:
            side = c.info.resolution
        body = _png(np.full((side, side), 255, np.uint8))

        def version_of(query: str) -> str:
            req = urllib.request.Request(f"{gw.url}/v1/generate?class=0&{query}", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.headers["x-model-version"]

        calls = 200
        seen = collections.Counter(version_of(f"seed={i}") for i in range(calls))
        share, sd = seen["2"] / calls, (0.25 * 0.75 / calls) ** 0.5
        assert set(seen) == {"1", "2"} and abs(share - 0.25) < 5 * sd, seen
        assert {version_of("seed=1&version=1") for _ in range(5)} == {"1"}  # a caller may pin either
        with pytest.raises(urllib.error.HTTPError) as e:
            version_of("seed=1&version=9")
        assert e.value.code == 404
        report = subprocess.run([sys.executable, "-m", "web.canary", "--url", gw.url], capture_output=True,
                                text=True, timeout=60)
        assert report.returncode == 0, report.stderr
        rows = {line.split("|")[1].strip(): line for line in report.stdout.splitlines()[2:]}
        assert set(rows) == {"1", "2"}, report.stdout

        r = _cli("promote", "--url", url, cwd=cwd)
        assert r.returncode == 0, _why(r, cwd)
        assert _result(r)["served"] == [2] and ready_json(h)[1]["model_versions"] == [2]
        wait_for(lambda: all(version_of(f"seed={i}") == "2" for i in range(20)), 30, "every call answered by v2")
    finally:
        gw.stop()
