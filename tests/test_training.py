"""The training loop on the fixture dataset: learning, exact resume, checkpoint format, DDP, bad input."""
import dataclasses
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import checkpoint as ckpt
from training.config import preset
from training.tensors import to_tensors
from training.train import RunOptions, Trainer

ROOT = Path(__file__).resolve().parents[1]


def _trainer(data, out, steps=20, resume=False, **over):
    m, t = preset("tiny")
    t = dataclasses.replace(t, steps=steps, **over)
    return Trainer(m, t, data, RunOptions(out=out, preset="tiny", resume=resume, progress=False))


def _l1_on_fixed_batches(tr) -> float:
    tr.G.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(4):
            sketch, real, y = to_tensors(tr.sampler.batch(10_000 + i, 1))
            z = torch.zeros(len(y), tr.model_cfg.noise_dim)
            total += (tr.G(sketch, y, z) - real).abs().mean().item()
    tr.G.train()
    return total / 4


def test_tiny_training_lowers_l1(tiny_data, tmp_path):
    tr = _trainer(tiny_data, tmp_path / "run", steps=60, batch_size=8)
    before = _l1_on_fixed_batches(tr)
    tr.run()
    after = _l1_on_fixed_batches(tr)
    assert after < 0.9 * before, (before, after)
    assert (tmp_path / "run" / "losses.png").exists()
    assert any((tmp_path / "run" / "samples").glob("step_*.png"))
    rows = (tmp_path / "run" / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 1 + 60 // 5


def test_resume_continues_exactly(tiny_data, tmp_path):
    straight = _trainer(tiny_data, tmp_path / "a")
    straight.run()
    first = _trainer(tiny_data, tmp_path / "b")
    first.run(until=10)  # as if interrupted right after the step-10 checkpoint
    resumed = _trainer(tiny_data, tmp_path / "b", resume=True)
    resumed.run()
    assert resumed.started_at == 10
    for (name, a), b in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(straight.D.state_dict().values(), resumed.D.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "a" / "losses.csv").read_text() .splitlines()[-1].split(",")[:8] == \
        (tmp_path / "b" / "losses.csv").read_text().splitlines()[-1].split(",")[:8]


def test_checkpoints_are_safetensors_without_pickle(tiny_data, tmp_path):
    _trainer(tiny_data, tmp_path / "r", steps=10).run()
    for name in ("checkpoint", "generator"):
        path = tmp_path / "r" / f"{name}.safetensors"
        raw = path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])  # a safetensors header is plain JSON; a pickle would not parse
        assert all("dtype" in v for k, v in header.items() if k != "__metadata__")
        assert not raw.startswith(b"\x80") and b"PK\x03\x04" not in raw[:8]
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["step"] == 10 and meta["class_names"] == tiny_data.class_names
        assert meta["data_fingerprint"] == tiny_data.fingerprint()
    assert not list((tmp_path / "r").glob("*.pt*")) and not list((tmp_path / "r").glob("*.pkl"))
    g, meta = ckpt.load_generator(tmp_path / "r" / "generator.safetensors")
    assert not g.training and meta["model"]["resolution"] == 32


def test_resume_with_another_preset_is_refused(tiny_data, tmp_path):
    _trainer(tiny_data, tmp_path / "r", steps=10).run()
    m, t = preset("tiny")
    other = Trainer(dataclasses.replace(m, width=8), dataclasses.replace(t, steps=20), tiny_data,
                    RunOptions(out=tmp_path / "r", resume=True, progress=False))
    with pytest.raises(ckpt.CheckpointError, match="cannot resume .* written for model"):
        other.run()


def test_training_into_an_existing_run_without_resume_is_refused(tiny_data, tmp_path):
    _trainer(tiny_data, tmp_path / "r", steps=10).run()
    with pytest.raises(FileExistsError, match="--resume"):
        _trainer(tiny_data, tmp_path / "r", steps=10).run()


def test_corrupt_or_unpaired_checkpoints_are_clear_errors(tiny_data, tmp_path):
    _trainer(tiny_data, tmp_path / "r", steps=10).run()
    path = tmp_path / "r" / "generator.safetensors"
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_generator(tmp_path / "missing.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="does not match its sidecar"):
        ckpt.load_generator(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="has no sidecar"):
        ckpt.load_generator(path)


def test_cli_reports_bad_dataset_path_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "training", "train", "--preset", "tiny", "--data",
                        str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2
    assert "error: dataset path" in r.stderr and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_cli_refuses_two_starting_points_instead_of_picking_one(tmp_path, capsys):
    from training.__main__ import main
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--resume",
                 "--finetune-from", str(tmp_path / "g.safetensors")]) == 2
    assert "--resume and --finetune-from exclude each other" in capsys.readouterr().err


def test_cli_stop_at_stops_inside_the_schedule_and_resume_finishes_it(sketchy_root, tmp_path, capsys):
    """`--stop-at` is how the shipped model's recipe keeps step 1200 of a 1600-step schedule: the run stops there
    with the schedule's settings, and `--resume` goes on to the end; a step outside the schedule is refused."""
    from training.__main__ import main
    out = tmp_path / "o"
    common = ["train", "--preset", "tiny", "--data", str(sketchy_root), "--steps", "4", "--no-progress", "--out",
              str(out)]
    assert main([*common, "--stop-at", "5"]) == 2
    assert "--stop-at must be a step in 1..4" in capsys.readouterr().err
    assert main([*common, "--stop-at", "2"]) == 0
    meta = json.loads((out / "generator.json").read_text())
    assert meta["step"] == 2 and meta["train"]["steps"] == 4
    assert main([*common, "--resume"]) == 0
    assert json.loads((out / "generator.json").read_text())["step"] == 4


@pytest.mark.slow
def test_ddp_smoke_two_cpu_processes(sketchy_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "training",
           "train", "--preset", "tiny", "--data", str(sketchy_root), "--steps", "4", "--out", str(tmp_path / "ddp"),
           "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "ddp" / "checkpoint.json").read_text())
    assert meta["world_size"] == 2 and meta["step"] == 4


def test_warm_start_continues_steps_with_new_settings_and_records_history(tiny_data, tmp_path):
    _trainer(tiny_data, tmp_path / "a", steps=10).run()
    m, t = preset("tiny")
    warm = Trainer(m, dataclasses.replace(t, steps=14, diversity_norm="rms"), tiny_data,
                   RunOptions(out=tmp_path / "b", progress=False, init_from=tmp_path / "a" / "checkpoint.safetensors"))
    warm.run()
    assert warm.started_at == 10 and warm.step == 14
    meta = json.loads((tmp_path / "b" / "generator.json").read_text())
    assert meta["history"][0]["step"] == 10 and meta["history"][0]["train"]["diversity_norm"] == "l2"
    assert meta["train"]["diversity_norm"] == "rms"


def test_diversity_norm_rms_scales_by_sqrt_of_noise_dim():
    from training import losses
    f1, f2 = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    z1, z2 = torch.zeros(1, 4), torch.full((1, 4), 1.0)  # ||dz|| = 2, rms = 1
    assert losses.diversity(f1, f2, z1, z2, "l2").item() == -0.5
    assert losses.diversity(f1, f2, z1, z2, "rms").item() == -1.0


def test_finetune_starts_g_from_a_generator_on_other_data_with_fresh_d(tiny_data, sketchy_root, tmp_path):
    from tests.conftest import make_sketchy
    from training.data import load_data
    _trainer(tiny_data, tmp_path / "a", steps=10).run()
    src = tmp_path / "a" / "generator.safetensors"
    other = load_data(str(make_sketchy(tmp_path / "other", size=32, seed=5)), 32)  # same classes, other images
    assert other.fingerprint() != tiny_data.fingerprint()
    m, t = preset("tiny")
    ft = Trainer(m, dataclasses.replace(t, steps=4), other, RunOptions(out=tmp_path / "b", progress=False,
                                                                       finetune_from=src))
    ft.finetune(src)
    tensors, _ = ckpt.load(src)
    for k, v in ft.G.state_dict().items():
        assert torch.equal(v, tensors[f"ema.{k}"]), k  # G and its EMA start from the source's EMA weights
    fresh_d = Trainer(m, dataclasses.replace(t, steps=4), other, RunOptions(out=tmp_path / "c", progress=False)).D
    assert all(torch.equal(a, b) for a, b in zip(ft.D.state_dict().values(), fresh_d.state_dict().values()))
    ft = Trainer(m, dataclasses.replace(t, steps=4), other, RunOptions(out=tmp_path / "b", progress=False,
                                                                       finetune_from=src))
    ft.run()
    assert ft.started_at == 0 and ft.step == 4
    meta = json.loads((tmp_path / "b" / "generator.json").read_text())
    assert meta["history"][-1]["finetune_from"] == str(src) and meta["history"][-1]["step"] == 10


def test_finetune_refuses_a_generator_with_other_classes(tiny_data, tmp_path):
    _trainer(tiny_data, tmp_path / "a", steps=2).run()
    src = tmp_path / "a" / "generator.safetensors"
    meta = json.loads(ckpt.sidecar_path(src).read_text())
    meta["class_names"] = list(reversed(meta["class_names"]))
    ckpt.sidecar_path(src).write_text(json.dumps(meta))
    m, t = preset("tiny")
    tr = Trainer(m, t, tiny_data, RunOptions(out=tmp_path / "b", progress=False, finetune_from=src))
    with pytest.raises(ckpt.CheckpointError, match="class ids must mean the same"):
        tr.finetune(src)


def test_finetune_on_a_photo_folder_maps_its_classes_onto_the_checkpoints_by_name(tiny_data, sketchy_root, tmp_path,
                                                                                  capsys):
    import shutil

    from training.__main__ import main
    from training.data import DatasetError, align_classes, load_data
    _trainer(tiny_data, tmp_path / "a", steps=2).run()
    src = tmp_path / "a" / "generator.safetensors"
    meta = json.loads(ckpt.sidecar_path(src).read_text())
    names = sorted(meta["class_names"], reverse=True)  # the checkpoint's order is not the folder's (alphabetical)
    meta["class_names"] = names
    ckpt.sidecar_path(src).write_text(json.dumps(meta))
    folder = tmp_path / "photos"
    for c in names:
        shutil.copytree(sketchy_root / "photo" / "tx_000000000000" / c, folder / c)
    data = load_data(str(folder), 32)
    aligned = align_classes(data, names)
    assert aligned.class_names == names and data.class_names == sorted(names)
    assert all(aligned.class_names[a] == data.class_names[b] for a, b in zip(aligned.labels, data.labels))
    out = tmp_path / "ft"
    assert main(["train", "--preset", "tiny", "--data", str(folder), "--steps", "1", "--finetune-from", str(src),
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "generator.json").read_text())["class_names"] == names
    # a class the checkpoint does not know, and one it knows that the folder lacks: both named
    (folder / names[0]).rename(folder / "hexagon")
    assert main(["train", "--preset", "tiny", "--data", str(folder), "--steps", "1", "--finetune-from", str(src),
                 "--out", str(tmp_path / "ft2"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert f"unknown to the checkpoint: ['hexagon']; missing from the data: ['{names[0]}']" in err, err
    with pytest.raises(DatasetError, match="missing from the data"):
        align_classes(load_data(str(folder), 32), names)


def test_cli_set_overrides_training_settings_with_typed_values():
    from training.__main__ import _overrides
    assert _overrides(["w_diversity=4", "human_strokes=false", "betas=0.5,0.9", "steps=7"]) == {
        "w_diversity": 4.0, "human_strokes": False, "betas": (0.5, 0.9), "steps": 7}
    with pytest.raises(ValueError, match="KEY one of"):
        _overrides(["no_such_setting=1"])
    with pytest.raises(ValueError, match="cannot read 'maybe' as bool"):
        _overrides(["human_strokes=maybe"])
