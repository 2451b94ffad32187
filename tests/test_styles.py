"""Output styles in training (training/styles.py): (style, class) labels, balanced batches, and a one-style
generator expanded into a two-style one that starts as the same model in every style."""
import dataclasses

import numpy as np
import torch

from training import checkpoint as ckpt
from training.config import preset
from training.data import merge_styles as merge
from training.sampler import BatchSampler
from training.styles import STYLES, expand_state, label
from training.train import RunOptions, Trainer


def _styled(tiny_data, photo_items: int = 6):
    few = dataclasses.replace(tiny_data, photos=tiny_data.photos[:photo_items], edges=tiny_data.edges[:photo_items],
                              labels=tiny_data.labels[:photo_items], val=np.zeros(photo_items, bool),
                              sketches=tiny_data.sketches[:0], sketch_photo=tiny_data.sketch_photo[:0])
    return merge({"photo": few, "art": tiny_data}, tiny_data.class_names)


def test_merged_data_labels_are_style_major_rows_and_batches_are_balanced(tiny_data):
    d = _styled(tiny_data)
    c = len(tiny_data.class_names)
    assert d.output_styles == list(STYLES) and d.num_labels == 2 * c
    assert (d.labels[:6] == tiny_data.labels[:6]).all()  # photo = style 0: the plain class ids
    assert (d.labels[6:] == label(tiny_data.labels, 1, c)).all() and (d.class_of[6:] == tiny_data.labels).all()
    # the art part's human sketches still point at its own photos
    assert (d.sketch_photo == tiny_data.sketch_photo + 6).all()
    s = BatchSampler(d, 64, seed=0)
    styles = np.concatenate([s.batch(k, 10).label // c for k in range(8)])
    assert 0.4 < (styles == 0).mean() < 0.6  # 6 photos against many more art images, drawn half the time
    assert d.fingerprint() != tiny_data.fingerprint()


def test_a_one_style_generator_starts_every_style_of_the_two_style_one(tiny_data, tmp_path):
    m, t = preset("tiny")
    one = Trainer(m, dataclasses.replace(t, steps=2), tiny_data, RunOptions(out=tmp_path / "a", progress=False))
    one.run()
    src = tmp_path / "a" / "generator.safetensors"
    d = _styled(tiny_data)
    two = Trainer(m, dataclasses.replace(t, steps=1), d, RunOptions(out=tmp_path / "b", progress=False,
                                                                     finetune_from=src))
    two.finetune(src)
    g1, _ = ckpt.load_generator(src)
    c = len(tiny_data.class_names)
    sk = torch.rand(4, 1, 32, 32)
    y = torch.arange(4) % c
    z = torch.randn(4, m.noise_dim)
    two.G_ema.eval()
    with torch.no_grad():
        base = g1(sk, y, z)
        for style in range(2):
            assert torch.allclose(two.G_ema(sk, label(y, style, c), z), base, atol=1e-5)
    expanded = expand_state(g1.state_dict(), c, 2)
    assert all(v.shape[0] == 2 * c for k, v in expanded.items() if k.endswith(".gamma.weight"))
    two.run()
    meta = ckpt.load(tmp_path / "b" / "generator.safetensors")[1]
    assert meta["output_styles"] == list(STYLES) and meta["model"]["num_classes"] == 2 * c
    assert meta["class_names"] == tiny_data.class_names


def test_cross_style_draws_the_art_items_sketches_in_the_photo_style_and_trains_on_them(tiny_data, tmp_path):
    m, t = preset("tiny")
    d = _styled(tiny_data)
    c = len(tiny_data.class_names)
    off = Trainer(m, dataclasses.replace(t, steps=1), d, RunOptions(out=tmp_path / "off", progress=False))
    assert off.cross_style_items(torch.tensor([0, c + 1])) is None  # the default: no cross-style term
    assert "cross" not in off.train_step(off.sampler.batch(0, 1))
    on = Trainer(m, dataclasses.replace(t, steps=1, w_cross_style=1.0), d,
                 RunOptions(out=tmp_path / "on", progress=False))
    idx, y = on.cross_style_items(torch.tensor([1, c + 2, 3, c]))
    assert idx.tolist() == [1, 3] and y.tolist() == [2, 0]  # art items, relabelled as the same class in photo
    assert on.cross_style_items(torch.tensor([0, 1])) is None  # a batch of photos alone has nothing to cross
    row = on.train_step(on.sampler.batch(0, 1))
    assert row["cross"] > 0
    # the photo-style rows of classes that appeared only as art in the batch were still trained
    batch = on.sampler.batch(1, 1)
    art_only = set((batch.label[batch.label >= c] % c).tolist()) - set(batch.label[batch.label < c].tolist())
    before = {k: v.clone() for k, v in on.G.state_dict().items() if k.endswith(".gamma.weight")}
    on.train_step(batch)
    moved = [k for k, v in on.G.state_dict().items() if k in before and
             any(not torch.equal(v[j], before[k][j]) for j in art_only)]
    assert art_only and moved


def test_cross_style_diversity_draws_the_crossed_sketches_twice_and_pushes_their_seeds_apart(tiny_data, tmp_path):
    m, t = preset("tiny")
    d = _styled(tiny_data)
    one = Trainer(m, dataclasses.replace(t, steps=1, w_cross_style=1.0), d,
                  RunOptions(out=tmp_path / "one", progress=False))
    row = one.train_step(one.sampler.batch(0, 1))
    assert "div_cross" not in row and {"div_photo", "div_art"} <= row.keys()  # per-style diversity is logged
    two = Trainer(m, dataclasses.replace(t, steps=1, w_cross_style=1.0, cross_style_diversity=True), d,
                  RunOptions(out=tmp_path / "two", progress=False))
    batch = two.sampler.batch(0, 1)
    crossed = int((torch.from_numpy(batch.label) >= len(tiny_data.class_names)).sum())
    seen: list[int] = []
    two.G.register_forward_hook(lambda mod, args, out: seen.append(len(args[0])))
    row = two.train_step(batch)
    assert seen == [2 * len(batch.label) + 2 * crossed]  # both draws of the crossed sketches, one G call
    assert row["div_cross"] < 0  # the term is -|dG|/|dz|: two draws that differ make it negative


def test_a_styled_checkpoints_sketches_come_from_one_styles_data():
    """evaluate, samples and score-report on a checkpoint trained on default-v4 (photos + art): the thin-stroke set
    is the art data's line drawings, edge maps are the drawn style's own images; other data sets are themselves."""
    from training.styles import sketch_data
    assert sketch_data("default-v4", "thin", None) == sketch_data("default-v4", "thin", "photo") == "default-v3"
    assert sketch_data("default-v4", "edges", None) == sketch_data("default-v4", "edges", "photo") == "photos"
    assert sketch_data("default-v4", "edges", "art") == "default-v3"
    assert sketch_data("default-v3", "thin", None) == "default-v3"
    assert sketch_data("/data/x", "edges", "art") == "/data/x"
