"""A photo turned into the sketch the model expects (`POST /v1/sketch`), with the edge extractor the training data
uses for photos (training/edges.py: bilateral smoothing, median-based Canny, small fragments dropped; torch-free,
OpenCV and numpy only), at the model's resolution."""
from __future__ import annotations

import numpy as np
from PIL import Image

from sketchygan_client.images import open_image
from training.edges import cutout_photo_edge_map, photo_edge_map


def photo_to_sketch(data: bytes, size: int) -> np.ndarray:
    """uint8 [size, size], black strokes on white. An opaque photo is centre-cropped to a square and resized, then
    edge-mapped as training's photo folders are; a photo with transparency (a cut-out object) is fitted on white
    keeping its aspect ratio and gets the cut-out edge map (its edges plus the silhouette), as the photo stamps do."""
    im = open_image(data).convert("RGBA")
    alpha = np.asarray(im)[..., 3]
    if alpha.min() == 255:
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        rgb = im.convert("RGB").crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        return photo_edge_map(np.asarray(rgb))
    scale = size / max(im.size)
    fitted = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    arr = np.asarray(canvas)
    white = Image.alpha_composite(Image.new("RGBA", (size, size), (255, 255, 255, 255)), canvas).convert("RGB")
    return cutout_photo_edge_map(np.asarray(white), arr[..., 3])
