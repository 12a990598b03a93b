"""The network's input from images of any kind: tensors, PIL images, files, numpy arrays.

``image_batch`` turns them into the (B, 3, S, S) float batch a model takes. Transparency is
composited over WHITE (the background of the training renders), palette and other colour modes
become RGB (``data/images.py``'s decoding policy, grayscale replicated), and an image of
another size is resized (its longer side to S) and padded with white to a square, with a logged
warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from temporal_nsr.data.images import (
    UNBOUNDED,
    ImageFileError,
    ImageLimits,
    ImageSizeError,
    open_image,
    rgb_pixels,
)
from temporal_nsr.errors import UserError

log = logging.getLogger(__name__)

ImageLike = Tensor | Image.Image | np.ndarray | str | Path


class ImageError(UserError):
    """An input image that cannot be read; the message names the file or the bad value."""


class ImageTooLargeError(ImageError):
    """An image file over the ``ImageLimits`` it was read with; the message names the limit."""


def _pixels_to_tensor(pixels: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 or float32 in [0, 1] -> (3, H, W) float32 in [0, 1]."""
    tensor = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float()  # a writable copy
    return tensor.div_(255.0) if pixels.dtype == np.uint8 else tensor


def _pil_to_tensor(image: Image.Image) -> Tensor:
    """PIL image of any mode -> (3, H, W) float32 RGB in [0, 1] (``data/images.py``'s policy)."""
    try:
        return _pixels_to_tensor(rgb_pixels(image, grayscale=True))
    except ImageFileError as error:
        raise ImageError(str(error)) from None


def _read_file(path: Path, limits: ImageLimits) -> Tensor:
    try:
        with open_image(path, limits) as image:
            return _pixels_to_tensor(rgb_pixels(image, grayscale=True))
    except ImageSizeError as error:
        raise ImageTooLargeError(str(error)) from None
    except ImageFileError as error:
        raise ImageError(str(error)) from None


def _to_chw(image: ImageLike, limits: ImageLimits) -> Tensor:
    """One image of any accepted kind -> (3, H, W) float tensor in [0, 1] (or (B, 3, H, W))."""
    if isinstance(image, (str, Path)):
        return _read_file(Path(image), limits)
    if isinstance(image, Image.Image):
        return _pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8:
            return _pil_to_tensor(Image.fromarray(image))
        if image.ndim == 3 and image.shape[-1] == 3 and np.issubdtype(image.dtype, np.floating):
            # (H, W, 3) float in [0, 1] -> (3, H, W), no round trip through uint8.
            return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
        raise ImageError(
            f"numpy images must be uint8 (H, W[, 3 or 4]) or float (H, W, 3) in [0, 1]; got "
            f"{image.dtype} {image.shape}"
        )
    if isinstance(image, Tensor):
        if image.dim() not in (3, 4) or image.shape[-3] != 3 or not image.is_floating_point():
            raise ImageError(
                f"image tensors must be float (B, 3, S, S) or (3, S, S) in [0, 1]; got "
                f"{image.dtype} {tuple(image.shape)}"
            )
        return image
    raise ImageError(f"cannot read an image from a {type(image).__name__}")


def _fit(images: Tensor, size: int) -> Tensor:
    """(B, 3, H, W) -> (B, 3, size, size): resize the longer side to ``size``, then pad the
    shorter one with white (resizing first: a thin strip never becomes a huge square)."""
    _, _, h, w = images.shape
    if (h, w) == (size, size):
        return images
    log.warning(
        "input image is %dx%d px but the model takes %dx%d: resizing it and padding it to a "
        "square with white",
        w,
        h,
        size,
        size,
    )
    side = max(h, w)
    new_h, new_w = max(1, round(h * size / side)), max(1, round(w * size / side))
    images = F.interpolate(
        images, size=(new_h, new_w), mode="bilinear", antialias=side > size, align_corners=False
    ).clamp(0, 1)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    return F.pad(images, (left, size - new_w - left, top, size - new_h - top), value=1.0)


def image_batch(
    images: ImageLike | Sequence[ImageLike], size: int | None, limits: ImageLimits = UNBOUNDED
) -> Tensor:
    """Turn images of any accepted kind (see the module docstring) into the network's input.

    Args:
        images: one image, a (B, 3, H, W) tensor, or a list of images.
        size: side S the model takes; None: each image at its own size (one image, or a list
            of one size).
        limits: largest image FILE accepted, checked before decoding (in-memory images are
            the caller's own).

    Returns:
        (B, 3, S, S) float32 RGB in [0, 1], on the device of a tensor input, else on the CPU.

    Raises:
        ImageError: a missing or unreadable file, one over ``limits``, or an array or tensor
            of the wrong kind.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageError("no images given")
        tensors = [image_batch(image, size, limits) for image in images]
        return torch.cat([t.to(tensors[0].device) for t in tensors])
    batch = _to_chw(images, limits).float()
    batch = batch if batch.dim() == 4 else batch[None]
    return batch if size is None else _fit(batch, size)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def image_files(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """The image files a command-line ``image=`` names: a file, a folder (its images, sorted),
    a glob (``shots/*.png``) or a list of any of these.

    Raises:
        ImageError: nothing matches, a missing file, or an empty folder; the message names it.
    """
    if isinstance(spec, (list, tuple)) or (
        not isinstance(spec, (str, Path)) and isinstance(spec, Sequence)
    ):
        files = [f for item in spec for f in image_files(item)]
        if not files:
            raise ImageError("image=[]: no images given")
        return files
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if any(c in str(spec) for c in "*?["):
        anchor = Path(path.anchor) if path.is_absolute() else Path()
        pattern = str(path.relative_to(anchor)) if path.is_absolute() else str(path)
        files = sorted(p for p in anchor.glob(pattern) if p.is_file())
        if not files:
            raise ImageError(f"no image file matches {spec}")
        return files
    if not path.is_file():
        raise ImageError(f"image file {path} does not exist")
    return [path]
