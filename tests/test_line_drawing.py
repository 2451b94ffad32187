"""Line drawings made from cut-out photos (training/line_drawing.py) and the data set that pairs them."""
import cv2
import numpy as np
import pytest

from training.line_drawing import LineStyle, pen_redrawn, photo_line_drawing


def _disc_photo(side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A cut-out orange disc on white with a dark stripe across it: an outline and one strong interior line."""
    rgb = np.full((side, side, 3), 255, np.uint8)
    alpha = np.zeros((side, side), np.uint8)
    cv2.circle(alpha, (side // 2, side // 2), side // 3, 255, -1)
    rgb[alpha > 0] = (230, 140, 30)
    rgb[side // 2 - 6: side // 2 + 6][alpha[side // 2 - 6: side // 2 + 6] > 0] = (40, 20, 10)
    return rgb, alpha


def test_a_line_drawing_is_the_closed_outline_plus_long_interior_lines_one_pixel_wide():
    rgb, alpha = _disc_photo()
    drawing = photo_line_drawing(rgb, alpha, 64)
    assert drawing.shape == (64, 64) and drawing.dtype == np.uint8 and set(np.unique(drawing)) <= {0, 255}
    ink = (drawing == 0).astype(np.uint8)
    # the outline is closed: the disc's inside is a region of paper apart from the outside
    n, lab = cv2.connectedComponents(1 - ink, connectivity=4)
    assert lab[32, 20] != lab[0, 0] and n >= 3  # the stripe's edges split the inside, the outside stays one
    # thinned: no 2x2 block of ink anywhere
    assert not (ink[:-1, :-1] & ink[1:, :-1] & ink[:-1, 1:] & ink[1:, 1:]).any()
    outline_only = photo_line_drawing(rgb, alpha, 64, LineStyle(interior_share=0.0))
    assert (outline_only == 0).sum() < ink.sum()  # the interior lines are the stripe's edges, kept because long


def test_a_photo_of_another_shape_or_too_small_is_refused():
    rgb, alpha = _disc_photo(32)
    with pytest.raises(ValueError, match=">= 64"):
        photo_line_drawing(rgb, alpha, 64)
    with pytest.raises(ValueError, match="square rgb and alpha of one size"):
        photo_line_drawing(rgb, alpha[:, :20], 16)


def test_pen_redrawing_is_one_or_two_pixels_wide():
    thick = np.full((32, 32), 255, np.uint8)
    thick[10:16, 4:28] = 0
    widths = {int((pen_redrawn(thick, np.random.default_rng(k))[:, 16] == 0).sum()) for k in range(8)}
    assert widths == {1, 2}
