"""Export: ONNX parity, batch invariance, safe inputs, generated configs, FP16 report, bad input."""
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export.onnx_export import onnx_io
from training import checkpoint as ckpt
from triton_repo.config import model_config
from triton_repo.config_reader import config_text, contract_from_config, parse_config
from triton_repo.contract import CLASS_ID, IMAGE, NOISE, NOISE_LIMIT, SKETCH
from triton_repo.runtimes import ort_session, random_inputs, run_ort
from triton_repo.serving_config import Limits, ServingConfig

ROOT = Path(__file__).resolve().parents[1]
NP_TO_TRITON = {"uint8": "TYPE_UINT8", "int32": "TYPE_INT32", "float32": "TYPE_FP32"}


@pytest.fixture(scope="module")
def session(exported):
    _, repo, _ = exported
    return ort_session(repo / "sketchygan" / "1" / "model.onnx")


def _inputs(n, rng, s=32, z=8, classes=4):
    return random_inputs(n, s, z, classes, rng)


def test_onnx_matches_pytorch_on_random_and_real_sketches(exported):
    report, _, _ = exported
    assert set(report["onnx_parity"]) == {"random", "real"}
    for part in report["onnx_parity"].values():
        assert part["max_abs_diff_levels"] <= 2 and part["n_samples"] > 0


def test_exported_graph_is_batch_invariant(session):
    sk, cid, z = _inputs(8, np.random.default_rng(1))
    batched = run_ort(session, sk, cid, z)
    for i in (0, 5):
        alone = run_ort(session, sk[i:i + 1], cid[i:i + 1], z[i:i + 1])[0]
        assert np.abs(alone.astype(np.int16) - batched[i]).max() <= 1


def test_any_class_id_and_noise_value_gives_the_sanitised_image(session):
    sk, _, z = _inputs(1, np.random.default_rng(2))
    def img(c, noise):
        return run_ort(session, sk, np.array([[c]], np.int32), noise.astype(np.float32))
    assert np.array_equal(img(-7, z), img(0, z))
    assert np.array_equal(img(2**31 - 1, z), img(3, z))
    for bad, same in ((np.nan, 0.0), (np.inf, NOISE_LIMIT), (-np.inf, 0.0), (1e30, NOISE_LIMIT),
                      (-1e30, -NOISE_LIMIT)):
        noisy, ref = z.copy(), z.copy()
        noisy[0, 3], ref[0, 3] = bad, same
        if bad == np.inf:  # non-finite values become 0, not the clamp limit
            ref[0, 3] = 0.0
        assert np.array_equal(img(1, noisy), img(1, ref)), bad


@pytest.mark.parametrize("value", [0, 255])
def test_blank_sketches_give_finite_images(exported, session, tiny_checkpoint, value):
    g, _ = ckpt.load_generator(tiny_checkpoint)
    sk = np.full((2, 32, 32), value, np.uint8)
    cid, z = np.array([[0], [3]], np.int32), np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    with torch.no_grad():
        raw = g(torch.from_numpy(sk).float().unsqueeze(1) / 255, torch.from_numpy(cid[:, 0]).long(),
                torch.from_numpy(z))
    assert torch.isfinite(raw).all()
    out = run_ort(session, sk, cid, z)
    expected = ((raw + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(out.astype(np.int16) - expected).max() <= 1


def test_generated_configs_parse_and_match_the_onnx_graph(exported):
    _, repo, gpu = exported
    folders = {"cpu": repo / "sketchygan", "tensorrt": gpu / "tensorrt" / "sketchygan",
               "onnxruntime-trt": gpu / "onnxruntime" / "sketchygan"}
    onnx_file = repo / "sketchygan" / "1" / "model.onnx"
    io = onnx_io(onnx_file)
    for target, folder in folders.items():
        cfg = parse_config((folder / "config.pbtxt").read_text())
        assert cfg.name == "sketchygan" and cfg.max_batch_size == 16
        assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
        declared = {t.name: (t.data_type, tuple(t.dims)) for t in list(cfg.input) + list(cfg.output)}
        from tritonclient.grpc import model_config_pb2 as mc
        want = {n: (mc.DataType.Value(NP_TO_TRITON[dt]), shape[1:]) for n, (dt, shape) in io.items()}
        if target == "cpu":  # model.py answers each image's checkpoint beside the graph's IMAGE
            want["CHECKPOINT"] = (mc.TYPE_STRING, (1,))
        assert declared == want, target
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        assert json.loads(params["class_names"]) == ["circle", "square", "star", "triangle"]
        assert params["resolution"] == "32" and params["noise_dim"] == "8"
        assert params["checkpoint_sha256"] == ckpt.sha256_file(exported[0]["checkpoint"] and
                                                               Path(exported[0]["checkpoint"]))
        assert len(cfg.model_warmup) == 1 and set(cfg.model_warmup[0].inputs) == {SKETCH, CLASS_ID, NOISE}
    assert parse_config((folders["cpu"] / "config.pbtxt").read_text()).backend == "python"
    trt = parse_config((folders["tensorrt"] / "config.pbtxt").read_text())
    assert trt.platform == "tensorrt_plan" and trt.instance_group[0].kind == trt.instance_group[0].KIND_GPU
    ort_cfg = parse_config((folders["onnxruntime-trt"] / "config.pbtxt").read_text())
    acc = ort_cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    assert acc.parameters["trt_engine_cache_enable"] == "1"


def test_trtexec_profile_matches_max_batch_size_and_tensor_names(exported):
    _, _, gpu = exported
    folder = gpu / "tensorrt" / "sketchygan"
    script = (folder / "build_engine.sh").read_text()
    cfg = parse_config((folder / "config.pbtxt").read_text())
    io = onnx_io(folder / "model.onnx")
    for kind, batch in (("min", 1), ("opt", 8), ("max", cfg.max_batch_size)):
        spec = re.search(rf"--{kind}Shapes=(\S+)", script).group(1)
        shapes = dict(item.split(":") for item in spec.split(","))
        assert set(shapes) == {t.name for t in cfg.input} == {n for n in io if n != IMAGE}
        for name, dims in shapes.items():
            assert tuple(int(d) for d in dims.split("x")) == (batch, *io[name][1][1:])
    assert "--fp16" in script and "ReduceMin:fp32" in script


def test_fp16_report_is_written_with_psnr(exported):
    report, repo, _ = exported
    saved = json.loads((repo / "sketchygan" / "export_report.json").read_text())
    assert saved["fp16"]["psnr_db"] >= 35.0 and saved["fp16"]["finite_and_nonconstant"]
    assert saved["fp16"]["inputs"] == "real validation sketches"
    assert report["fp16"] == saved["fp16"]


def _export_cli(*args):
    return subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True, cwd=ROOT)


def test_bad_export_inputs_are_clear_errors_and_write_nothing(tmp_path, tiny_checkpoint):
    out = tmp_path / "repo"
    r = _export_cli("--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(out))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _export_cli("--checkpoint", str(tiny_checkpoint), "--out", str(out), "--targets", "cpu,tpu")
    assert r.returncode == 2 and "unknown target" in r.stderr
    r = _export_cli("--checkpoint", str(tiny_checkpoint), "--out", str(out), "--targets", "cpu", "--preset", "cpu")
    assert r.returncode == 2 and "is not a 'cpu'-preset checkpoint" in r.stderr
    corrupt = tmp_path / "c.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    corrupt.with_suffix(".json").write_text(Path(tiny_checkpoint).with_suffix(".json").read_text())
    r = _export_cli("--checkpoint", str(corrupt), "--out", str(out), "--targets", "cpu")
    assert r.returncode == 2 and "does not match its sidecar" in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_folder_is_refused(tmp_path, tiny_checkpoint):
    import os
    if os.geteuid() == 0:
        ro = tmp_path / "file-not-dir"
        ro.write_text("x")  # root ignores permissions: use a path that cannot be a folder instead
        r = _export_cli("--checkpoint", str(tiny_checkpoint), "--out", str(ro / "repo"), "--targets", "cpu")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        r = _export_cli("--checkpoint", str(tiny_checkpoint), "--out", str(ro), "--targets", "cpu")
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.gpu
def test_tensorrt_engine_builds_on_this_gpu_and_records_the_tensorrt_version(exported):
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installable on these CPU machines (PyPI ships "
                                              "only stubs; see docs/deploy-gpu.md): build inside "
                                              "NVIDIA's tritonserver container on the target GPU")
    from export.tensorrt_build import EngineSpec, build_engine, check_plan_compat
    from triton_repo.contract import Contract
    _, _, gpu = exported
    folder = gpu / "tensorrt" / "sketchygan"
    cfg = parse_config((folder / "config.pbtxt").read_text())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    spec = EngineSpec(Contract(32, 8, tuple(json.loads(params["class_names"])), params["checkpoint_sha256"]),
                      cfg.max_batch_size, 8)
    info = build_engine(spec, folder / "model.onnx", folder / "1" / "model.plan")
    assert info["tensorrt"] == trt.__version__
    check_plan_compat(folder / "1" / "model.plan")


def test_batching_without_delay_or_preferred_sizes_still_enables_the_dynamic_batcher(exported):
    """The tuned default sets no field of dynamic_batching; the section must still be written, or Triton would
    serve every request alone."""
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    serving = ServingConfig(preferred_batch_sizes=(), max_queue_delay_us=0)
    cfg = parse_config(config_text(model_config(contract, serving, "cpu")))
    assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 0
    off = parse_config(config_text(model_config(contract, dataclasses.replace(serving, dynamic_batching=False), "cpu")))
    assert not off.HasField("dynamic_batching")


def test_queue_policy_bounds_the_queue_and_rejects_stale_requests_in_every_target(exported):
    """Overload protection is generated from ServingConfig into every target's config.pbtxt."""
    from tritonclient.grpc import model_config_pb2 as mc
    _, repo, _ = exported
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    serving = ServingConfig(limits=Limits(max_queue_size=48, queue_timeout_us=150_000))
    for target in ("cpu", "tensorrt", "onnxruntime-trt", "openvino"):
        cfg = parse_config(config_text(model_config(contract, serving, target)))
        policy = cfg.dynamic_batching.default_queue_policy
        assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
        assert policy.max_queue_size == 48 and policy.default_timeout_microseconds == 150_000
        assert policy.allow_timeout_override  # the client's remaining deadline is the request's timeout
    shipped = parse_config((repo / "sketchygan" / "config.pbtxt").read_text())
    assert shipped.dynamic_batching.default_queue_policy.max_queue_size == Limits().max_queue_size
    assert shipped.parameters["noise_abs_max"].string_value == "16"
    with pytest.raises(ValueError, match=r"Limits.max_queue_size must be >= 0 \(0 = unbounded\), got -1"):
        Limits(max_queue_size=-1)


def test_native_openvino_folder_reads_the_onnx_with_one_stream_per_instance(exported, tmp_path):
    """The production CPU folder for Triton's own OpenVINO backend (not in the pip tritonserver used here, so its
    config is checked by parsing): ONNX as the model file, the contract's I/O, streams and threads from
    ServingConfig, no python stub."""
    from tritonclient.grpc import model_config_pb2 as mc

    from triton_repo.folders import write_model_folder
    _, repo, _ = exported
    onnx_file = repo / "sketchygan" / "1" / "model.onnx"
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    folder = write_model_folder(tmp_path, "openvino", contract, ServingConfig(limits=Limits(instances=2, threads=1)),
                                onnx_file)
    cfg = parse_config((folder / "config.pbtxt").read_text())
    assert cfg.backend == "openvino" and cfg.default_model_filename == "model.onnx"
    assert (folder / "1" / "model.onnx").read_bytes() == onnx_file.read_bytes()
    assert not (folder / "1" / "model.py").exists() and not (tmp_path / "sketchygan_drain").exists()
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, mc.ModelInstanceGroup.KIND_CPU)]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["NUM_STREAMS"] == "2" and params["INFERENCE_NUM_THREADS"] == "2"
    io = onnx_io(onnx_file)
    declared = {t.name: tuple(t.dims) for t in list(cfg.input) + list(cfg.output)}
    assert declared == {n: tuple(shape[1:]) for n, (_, shape) in io.items()}
