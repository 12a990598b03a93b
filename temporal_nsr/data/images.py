"""Image decoding policy: one image file -> RGB pixels, its size bounded before decoding.

Every reader of image files goes through here: the dataset (``data/dataset.py``, colour only)
and the inference API (``temporal_nsr.inference``, greyscale accepted), and through it render
and the viewer. ``open_image`` reads only the header (PNG, JPEG, ... as PIL knows them), so a
file over ``ImageLimits`` is refused in one line before a pixel is decoded; PIL's own
decompression-bomb refusal becomes the same line. ``rgb_pixels`` then decodes one policy:

* transparency (RGBA, LA, palette with a transparent entry) is composited over WHITE, the
  background of the training renders, so see-through pixels do not turn black;
* palette, CMYK and other colour modes become RGB;
* greyscale is replicated into three channels with ``grayscale=True`` (16/32-bit greyscale
  scaled by its range instead of clipped at 255), and an error otherwise: in a dataset it is
  almost always a wrong file.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from temporal_nsr.errors import UserError

# PIL modes without colour.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_HIGH_DEPTH_GRAY = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What PIL raises for a file that is not a readable image.
_UNREADABLE = (OSError, UnidentifiedImageError, SyntaxError, ValueError)


class ImageLimits(NamedTuple):
    """Largest image file accepted; None: unbounded (PIL's decompression-bomb bound remains)."""

    max_pixels: int | None = None  # width x height
    max_bytes: int | None = None  # size of the file
    setting: str = "max_pixels / max_bytes"  # the config node that sets them, for messages
    max_side: int | None = None  # the longer of width and height
    max_aspect: float | None = None  # longer side / shorter side


UNBOUNDED = ImageLimits()


class ImageFileError(UserError):
    """An image file that is missing, unreadable, too large or of a refused kind (one line).

    ``cause`` is PIL's error for an unreadable file, for callers that word it their own way.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class GrayscaleError(ImageFileError):
    """A greyscale image where colour is required."""


class ImageSizeError(ImageFileError):
    """An image over ``ImageLimits``: the message names the file, its size and the setting."""


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.3g} MB"


def check_file_size(path: Path, limits: ImageLimits) -> None:
    """Raise ImageFileError for a missing file, ImageSizeError for one over ``max_bytes``."""
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageFileError(f"image file {path} does not exist") from None
    if not path.is_file():
        raise ImageFileError(f"image file {path} does not exist")
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise ImageSizeError(
            f"{path.name} is {_megabytes(size)}, more than the {_megabytes(limits.max_bytes)} "
            f"accepted: use a smaller file or raise {limits.setting}.max_bytes"
        )


def check_pixels(name: str, width: int, height: int, limits: ImageLimits) -> None:
    """Raise ImageSizeError when width x height exceeds ``limits.max_pixels``, a side exceeds
    ``max_side`` or the sides' ratio exceeds ``max_aspect`` (a 1 x 14000 strip)."""
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        raise ImageSizeError(
            f"{name} is {width}x{height} px, more than the {limits.max_pixels} px accepted "
            f"(e.g. {_square(limits.max_pixels)}): use a smaller image or raise "
            f"{limits.setting}.max_pixels"
        )
    if limits.max_side is not None and max(width, height) > limits.max_side:
        raise ImageSizeError(
            f"{name} is {width}x{height} px, a side longer than the {limits.max_side} px "
            f"accepted: use a smaller image or raise {limits.setting}.max_side"
        )
    aspect = max(width, height) / max(min(width, height), 1)
    if limits.max_aspect is not None and (min(width, height) < 1 or aspect > limits.max_aspect):
        raise ImageSizeError(
            f"{name} is {width}x{height} px, {aspect:.3g} times longer than wide, more than the "
            f"{limits.max_aspect:g} accepted: crop it closer to a square or raise "
            f"{limits.setting}.max_aspect"
        )


def _square(pixels: int) -> str:
    side = int(pixels**0.5)
    return f"{side}x{side}"


@contextmanager
def open_image(path: str | Path, limits: ImageLimits = UNBOUNDED) -> Iterator[Image.Image]:
    """Open an image file, reading only its header, after checking its byte and pixel size.

    Yields:
        The PIL image, not yet decoded (``rgb_pixels`` decodes it); closed on exit.

    Raises:
        ImageFileError: a missing or unreadable file (the message names the PIL error class).
        ImageSizeError: over ``limits``, or over PIL's decompression-bomb bound.
    """
    path = Path(path)
    check_file_size(path, limits)
    try:
        with warnings.catch_warnings():
            # The pixel bound below is ours; PIL's warning short of its own bound is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageSizeError(
            f"{path.name} has more than {2 * Image.MAX_IMAGE_PIXELS} px, which PIL refuses as a "
            "possible decompression bomb: use a smaller image"
        ) from None
    except _UNREADABLE as error:
        raise _unreadable(path, error) from None
    with image:
        check_pixels(path.name, *image.size, limits)  # the header's size: nothing decoded yet
        yield image


def _unreadable(name: str | Path, error: BaseException) -> ImageFileError:
    return ImageFileError(f"{name} is not a readable image ({type(error).__name__})", error)


def rgb_pixels(image: Image.Image, *, grayscale: bool) -> np.ndarray:
    """Decode a PIL image by the module's policy.

    Args:
        image: any mode, e.g. from ``open_image``.
        grayscale: accept greyscale (replicated into RGB); False raises GrayscaleError.

    Returns:
        (H, W, 3) RGB pixels: uint8, except float32 in [0, 1] for 16/32-bit greyscale.

    Raises:
        GrayscaleError: greyscale with ``grayscale=False``. ImageFileError: a corrupt or
            truncated file (PIL fails while decoding).
    """
    name = getattr(image, "filename", "") or "the image"
    if image.mode in GRAY_MODES and not grayscale:
        raise GrayscaleError(f"{name} is grayscale (PIL mode {image.mode!r})")
    try:
        image.load()
        if image.mode in _HIGH_DEPTH_GRAY:
            pixels = np.asarray(image, dtype=np.float32)
            if image.mode != "F":  # "F" is [0, 1] already
                pixels = pixels / (65535.0 if image.mode != "I" or pixels.max() > 255 else 255.0)
            return np.repeat(np.clip(pixels, 0, 1)[..., None], 3, axis=-1)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in _ALPHA_MODES:
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, image.convert("RGBA"))
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (*_UNREADABLE, Image.DecompressionBombError) as error:
        raise _unreadable(name, error) from None
