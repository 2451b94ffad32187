"""The in-process runtime table (`python -m loadtest runtimes`): real runs of the exported tiny ONNX under both
runtimes, the markdown it prints, and its CLI's refusals."""
import numpy as np
import pytest

from loadtest.__main__ import main
from loadtest.ceiling import Layout, runner, runtime_markdown, runtime_table
from triton_repo.config_reader import contract_from_config, parse_config
from triton_repo.runtimes import ort_session, ov_compiled, random_inputs, run_ort, run_ov


def test_runtime_table_measures_every_layout_and_renders_one_row_per_runtime_layout(exported):
    _, repo, _ = exported
    folder = repo / "sketchygan"
    contract = contract_from_config(parse_config((folder / "config.pbtxt").read_text()))
    layouts = [Layout(1, 1, 2, "onnxruntime"), Layout(1, 1, 4, "onnxruntime"), Layout(2, 1, 2, "openvino"),
               Layout(2, 1, 2, "openvino", pinned=True), Layout(2, 1, 2, "openvino", precision=None)]
    table = runtime_table(folder / "1" / "model.onnx", contract, seconds=0.3, rounds=2, layouts=layouts)
    rows = {r["name"]: r for r in table["rows"]}
    assert set(rows) == {lay.name for lay in layouts} and len(rows) == 5
    for r in rows.values():
        assert len(r["windows"]) == 2 and r["images_per_s"] > 0 and r["cores"] > 0
    assert table["cpu"]["model"] and table["cpu"]["isa"] and table["cpu"]["cores"] >= 1  # figures name their CPU
    md = runtime_markdown(table).splitlines()
    assert md[0].startswith(f"CPU: {table['cpu']['model']} ({table['cpu']['isa']}") and md[1] == ""
    assert md[0].endswith(f"OpenVINO's default precision here: {table['openvino_default_precision']}")
    md = md[2:]
    assert md[0] == "| runtime, layout | batch 2 | batch 4 |"
    assert md[2].startswith("| onnxruntime, 1 session × 1 thread |")
    assert md[4].startswith("| openvino, 2 models × 1 thread, pinned | ") and md[4].endswith("| - |")
    assert md[5].startswith("| openvino, 2 models × 1 thread, default precision | ")


def test_openvino_computes_in_float32_on_every_kind_of_cpu(exported):
    """OpenVINO's own default is bfloat16 on a CPU with it natively (AVX-512-BF16, AMX): 20 grey levels from
    onnxruntime on the shipped model there, measured. Pinned, the runtime gives the same pixels on every machine."""
    import openvino as ov
    _, repo, _ = exported
    onnx = repo / "sketchygan" / "1" / "model.onnx"
    compiled = ov_compiled(onnx, 1)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    contract = contract_from_config(parse_config((repo / "sketchygan" / "config.pbtxt").read_text()))
    sk, cid, z = random_inputs(8, contract.resolution, contract.noise_dim, len(contract.class_names), 4)
    diff = np.abs(run_ov(compiled, sk, cid, z).astype(int) - run_ort(ort_session(onnx, 1), sk, cid, z).astype(int))
    assert diff.max() <= 1, diff.max()


def test_runner_refuses_an_unknown_runtime(exported):
    _, repo, _ = exported
    with pytest.raises(ValueError, match="unknown runtime 'tvm'"):
        runner("tvm", repo / "sketchygan" / "1" / "model.onnx", 1)


@pytest.mark.parametrize("argv, message", [
    (["--repository", "/nonexistent"], "no exported sketchygan/1/model.onnx"),
    (["--seconds", "0"], "expected --seconds >= 1"),
])
def test_runtimes_cli_refuses_bad_arguments(argv, message, capsys, exported):
    _, repo, _ = exported
    args = ["runtimes", "--repository", str(repo), "--out", "/tmp/unused"] + argv
    assert main(args) == 2
    assert message in capsys.readouterr().err
