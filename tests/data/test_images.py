"""The image decoding policy: size bounds from the header, one conversion, greyscale by flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from temporal_nsr.data.images import (
    GrayscaleError,
    ImageFileError,
    ImageLimits,
    ImageSizeError,
    open_image,
    rgb_pixels,
)

LIMITS = ImageLimits(max_pixels=4096 * 4096, max_bytes=32 * 2**20, setting="image_limits")


def _decode(path: Path, limits: ImageLimits = LIMITS, grayscale: bool = True) -> np.ndarray:
    with open_image(path, limits) as image:
        return rgb_pixels(image, grayscale=grayscale)


def test_pixels_over_the_limit_are_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("1", (4097, 4096)).save(path)  # a few kB on disk
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageSizeError) as error, open_image(path, LIMITS):
        pytest.fail("the image was handed out")
    assert str(error.value) == (
        "wide.png is 4097x4096 px, more than the 16777216 px accepted (e.g. 4096x4096): use a "
        "smaller image or raise image_limits.max_pixels"
    )
    Image.new("1", (4096, 4096)).save(path)
    assert _decode(path).shape == (4096, 4096, 3)  # the limit itself is accepted


def _noise(path: Path, side: int = 64) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_bytes_over_the_limit_are_refused_before_opening(tmp_path: Path) -> None:
    path = _noise(tmp_path / "noise.png")
    with pytest.raises(ImageSizeError) as error:
        _decode(path, LIMITS._replace(max_bytes=1000))
    assert str(error.value).startswith("noise.png is 0.01")
    assert str(error.value).endswith(
        "MB, more than the 0.000954 MB accepted: use a smaller file or raise image_limits.max_bytes"
    )


def test_a_decompression_bomb_is_the_same_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(path)  # 225 M pixels: above PIL's own bound
    with pytest.raises(ImageSizeError, match=r"^bomb.png has more than \d+ px, which PIL refuses"):
        _decode(path, ImageLimits())  # even without limits of ours
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's bound off: ours still holds
    with pytest.raises(ImageSizeError, match="15000x15000 px, more than the 16777216 px"):
        _decode(path)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageFileError, match=r"notes.png is not a readable image \(Unidentified"):
        _decode(text)
    truncated = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(
        truncated
    )
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ImageFileError, match="cut.png is not a readable image") as error:
        _decode(truncated)
    assert error.value.cause is not None  # PIL's error, for callers that word it their way
    with pytest.raises(ImageFileError, match="does not exist"):
        _decode(tmp_path / "missing.png")


def test_one_policy_with_and_without_greyscale(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.new("L", (8, 8), 128).save(grey)
    with pytest.raises(GrayscaleError, match=r"grey.png is grayscale \(PIL mode 'L'\)"):
        _decode(grey, grayscale=False)
    assert (_decode(grey) == 128).all() and _decode(grey).dtype == np.uint8
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(deep)  # 16-bit greyscale
    pixels = _decode(deep)
    assert pixels.dtype == np.float32 and np.allclose(pixels, 0.5, atol=1e-4)
    # Transparency goes over white in both policies; colour modes become RGB.
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (10, 20, 30, 255)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    for grayscale in (True, False):
        pixels = _decode(path, grayscale=grayscale)
        assert pixels.dtype == np.uint8 and pixels.shape == (8, 8, 3)
        assert (pixels[0] == (10, 20, 30)).all() and (pixels[-1] == 255).all()
