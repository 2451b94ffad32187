"""`sketchygan-client batch` against a real tritonserver: a manifest with a bad row, receipts, resuming, a folder."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sketchygan_client import SketchClient
from tests.e2e.test_client import _sketch


def _cli(server, *args):
    return subprocess.run([sys.executable, "-m", "sketchygan_client.cli", "--url", server.grpc_url, "batch", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def manifest(tmp_path):
    """48 sketches in a sub-folder, one row each (class by name, some with a first seed), then one row whose class
    the model does not know (line 50) and one whose file is not an image (line 51)."""
    (tmp_path / "in").mkdir()
    classes = ("circle", "square", "star", "triangle")
    rows = ["sketch,class,seed"]
    for i in range(48):
        Image.fromarray(_sketch(i)).save(tmp_path / "in" / f"s{i:02d}.png")
        rows.append(f"in/s{i:02d}.png,{classes[i % 4]},{10 * i if i % 3 == 0 else ''}")
    rows.append("in/s00.png,dragon,")
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    rows.append("in/broken.png,circle,")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_manifest_makes_every_image_with_its_receipt_reports_bad_rows_and_resumes(server, manifest, tmp_path):
    out = tmp_path / "out"
    r = _cli(server, str(manifest), "-o", str(out), "--seeds", "2")
    assert r.returncode == 2, r.stderr  # some rows failed: the exit status says so
    assert f"{manifest}:50: unknown class 'dragon'" in r.stderr, r.stderr
    assert f"{manifest}:51: " in r.stderr and "not a readable image" in r.stderr, r.stderr
    assert "96 written, 0 already there, 2 failed" in r.stdout, r.stdout
    receipts = [json.loads(line) for line in (out / "receipts.jsonl").read_text().splitlines()]
    assert len(receipts) == 96 and len({x["file"] for x in receipts}) == 96
    assert len(list(out.glob("*.png"))) == 96
    # each image is what the client makes of its row, and its receipt says how to make it again
    with SketchClient(server.grpc_url) as client:
        for x in receipts[::7]:
            img = np.asarray(Image.open(out / x["file"]))
            assert np.array_equal(img, client.generate_array(x["sketch"], x["class_name"], seed=x["seed"])), x
            _, receipt = client.generate_explained(x["sketch"], x["class_name"], seed=x["seed"])
            assert {k: x[k] for k in ("model", "model_version", "checkpoint_sha256", "sketch_sha256")} == \
                {k: getattr(receipt, k) for k in ("model", "model_version", "checkpoint_sha256", "sketch_sha256")}
    seeds = {(x["sketch"].rsplit("/", 1)[-1], x["seed"]) for x in receipts}
    assert ("s03.png", 30) in seeds and ("s03.png", 31) in seeds and ("s01.png", 0) in seeds and ("s01.png", 1) in seeds

    # run again: nothing new, and it says so
    r = _cli(server, str(manifest), "-o", str(out), "--seeds", "2")
    assert "0 written, 96 already there (nothing new to write), 2 failed" in r.stdout, r.stdout
    assert len((out / "receipts.jsonl").read_text().splitlines()) == 96

    # an interrupted job: an image lost, a receipt line cut short -> exactly that one is made again
    lost = receipts[5]["file"]
    (out / lost).unlink()
    with (out / "receipts.jsonl").open("a") as f:
        f.write('{"file": "s4')
    r = _cli(server, str(manifest), "-o", str(out), "--seeds", "2")
    assert "1 written, 95 already there, 2 failed" in r.stdout, r.stdout
    assert (out / lost).is_file()
    r = _cli(server, str(manifest), "-o", str(out), "--seeds", "2")
    assert "0 written, 96 already there (nothing new to write)" in r.stdout, r.stdout


def test_a_folder_with_one_class_and_a_style_the_model_lacks(server, tmp_path):
    folder = tmp_path / "sketches"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_sketch(100 + i)).save(folder / f"d{i}.png")
    r = _cli(server, str(folder), "--class", "star", "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == [f"d{i}-star-seed0.png" for i in range(3)]
    r = _cli(server, str(folder), "-o", str(tmp_path / "o2"))
    assert r.returncode == 2 and "give the class of its sketches with --class" in r.stderr
    r = _cli(server, str(folder), "--class", "star", "--style", "art", "-o", str(tmp_path / "o3"))
    assert r.returncode == 2 and "draws one style" in r.stderr and "0 written" in r.stdout, (r.stdout, r.stderr)
    r = _cli(server, str(tmp_path / "nothing.csv"), "-o", str(tmp_path / "o4"))
    assert r.returncode == 2 and "neither a manifest file nor a folder" in r.stderr
