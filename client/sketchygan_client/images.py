"""Image helpers: any PNG/JPEG/array in -> the model's S x S grayscale sketch; IMAGE tensor -> PIL."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sketchygan_client.errors import InvalidInput

MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding
SketchInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


def open_image(src: SketchInput) -> Image.Image:
    """Any accepted input as a decoded PIL image: decompression bombs and unreadable files refused (InvalidInput)."""
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        arr = src
        if arr.dtype != np.uint8:
            if arr.size and np.issubdtype(arr.dtype, np.floating) and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0:
                arr = (arr * 255).round()
            arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
            return Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        raise InvalidInput(f"sketch array has shape {arr.shape}; expected HxW, HxWx1, HxWx3 or HxWx4")
    data = src
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise InvalidInput(f"sketch file {path} does not exist")
        data = path.read_bytes()
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInput(f"sketch must be a path, bytes, PIL image or numpy array, got {type(src).__name__}")
    try:
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > MAX_PIXELS:
            raise InvalidInput(f"sketch image is {im.width}x{im.height}; at most {MAX_PIXELS} pixels are accepted")
        im.load()
        return im
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        name = str(src) if isinstance(src, (str, os.PathLike)) else "sketch bytes"
        why = "" if isinstance(e, UnidentifiedImageError) else f": {e}"  # Pillow's text names a BytesIO object
        raise InvalidInput(f"{name} is not a readable image (PNG/JPEG expected){why}") from None


def to_sketch(src: SketchInput, size: int) -> np.ndarray:
    """Grayscale uint8 [size, size]: transparent -> white, fitted keeping the aspect ratio, padded with white. A
    sketch already in that form is returned as it is (the gateway decodes an upload once; the client's request
    building, which gets it next, does no second pass)."""
    if isinstance(src, np.ndarray) and src.dtype == np.uint8 and src.shape == (size, size):
        return src
    im = open_image(src)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    im = im.convert("L")
    if im.size != (size, size):
        im = ImageOps.pad(im, (size, size), method=Image.LANCZOS, color=255)
    return np.asarray(im, dtype=np.uint8)


def to_image(arr: np.ndarray) -> Image.Image:
    """IMAGE tensor [S, S, 3] uint8 -> RGB PIL image."""
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
