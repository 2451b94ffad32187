"""The photo data (training/sources/tuxpaint.py): the allow-list, the near-duplicate groups, the held-out split, and
the real photos as `load_data("photos")` gives them (fetched by `make data-install` with apt-get download)."""
import os
from collections import Counter

import numpy as np
import pytest

from training.sources import tuxpaint
from training.sources.tuxpaint import Stamp, allow_list, validation_groups

COUNTS = {"animal-mammal": 61, "animal-bird": 35, "animal-marine": 17, "animal-bug": 8, "food-fruit": 26,
          "food-vegetable": 26, "plant-flower": 25, "transport-ground": 8}


def test_the_allow_list_holds_the_206_photos_by_class_and_no_clip_art():
    stamps = allow_list()
    assert Counter(s.class_name for s in stamps) == COUNTS
    assert len({s.path for s in stamps}) == len(stamps) == 206
    assert all(s.path.endswith(".png") and "/cartoon/" not in s.path and "/iso_" not in s.path for s in stamps)


def test_near_duplicates_share_a_group_and_distinct_objects_do_not():
    def g(path, cls="animal-mammal"):
        return Stamp(path, cls).group
    assert g("animals/gnu-stand.png") == g("animals/gnu-sitting.png") == g("animals/gnu-baby.png")
    assert g("food/cep.png", "food-vegetable") == g("food/cep-1.png", "food-vegetable")
    assert g("vehicles/dumper.png", "transport-ground") == g("vehicles/dumper_mirror.png", "transport-ground")
    assert g("food/apple_red.png", "food-fruit") == g("food/apple_fuji.png", "food-fruit")
    assert g("plants/flower1.png", "plant-flower") != g("plants/flower2.png", "plant-flower")
    assert g("animals/cow.png") != g("animals/camel.png")


def test_the_split_holds_out_whole_groups_in_every_class_and_is_stable():
    stamps = allow_list()
    held = validation_groups(stamps)
    for c in COUNTS:
        assert any(s.group in held for s in stamps if s.class_name == c), c  # every class has held-out photos
        assert not all(s.group in held for s in stamps if s.class_name == c), c  # and training photos
    # adding stamps of another class does not move anything of these classes
    more = stamps + [Stamp(f"x/thing{i}.png", "other-class") for i in range(10)]
    assert {h for h in validation_groups(more) if not h.startswith("other-class/")} == held


@pytest.fixture
def fetched_photos(monkeypatch):
    """The photos `make data-install` fetched into the user's cache (the suite otherwise isolates the cache)."""
    monkeypatch.setenv("SKETCHYGAN_CACHE", os.path.expanduser("~/.cache/sketchygan"))
    return tuxpaint.fetch()


def test_load_data_photos_gives_every_photo_with_its_edge_map_and_a_held_out_split(fetched_photos):
    from training.data import load_data
    from training.emoji_data import DEFAULT_CLASSES
    d = load_data("photos", 64)
    assert d.photos.shape == (206, 64, 64, 3) and d.edges.shape == (206, 64, 64)
    assert d.class_names == list(DEFAULT_CLASSES)
    assert {d.class_names[c]: n for c, n in enumerate(np.bincount(d.labels))} == COUNTS
    assert all(d.val[d.labels == c].any() and (~d.val[d.labels == c]).any() for c in range(8))
    corners = d.photos[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners >= 250).all()  # cut out and composited on white
    ink = (d.edges < 128).mean(axis=(1, 2))
    assert (ink > 0.01).all() and (ink < 0.5).all()  # an outline at least, never a filled square
    # the object fills the frame the way the art does: 90 % of the side on its longer axis
    obj = (d.photos < 245).any(-1)
    extent = [max(np.ptp(np.flatnonzero(o.any(0))), np.ptp(np.flatnonzero(o.any(1)))) + 1 for o in obj]
    assert np.median(extent) >= 0.85 * 64


def test_photos_lines_pairs_every_photo_with_a_thin_line_drawing_and_default_v5_trains_on_them(fetched_photos):
    from training.data import load_data
    plain, lined = load_data("photos", 64), load_data("photos-lines", 64)
    assert (lined.photos == plain.photos).all() and (lined.edges == plain.edges).all()  # the same photos and edges
    assert lined.sketches.shape == (206, 64, 64) and (lined.sketch_photo == np.arange(206)).all()
    ink = (lined.sketches < 128)
    assert (ink.mean(axis=(1, 2)) > 0.01).all()  # every photo has its line drawing, at least an outline
    assert ink.sum() < (plain.edges < 128).sum()  # thinner and sparser than the edge maps
    both = load_data("default-v5", 64)
    photo_items = np.flatnonzero(both.labels < len(both.class_names))
    assert set(both.sketch_photo.tolist()) >= set(photo_items.tolist())  # each photo item has its drawing
    assert both.fingerprint() != load_data("default-v4", 64).fingerprint()
