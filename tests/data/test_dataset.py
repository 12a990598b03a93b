"""RenderedViews: the on-disk format, its error messages, RGB conversion and the image cache."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from temporal_nsr.batch import ViewPair
from temporal_nsr.data import dataset as dataset_mod
from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.errors import DatasetError

SIZE = 8


def pixels(index: int, size: int = SIZE) -> np.ndarray:
    """A distinct (S, S, 3) uint8 image per record index."""
    rng = np.random.default_rng(index)
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def write_split(
    root_split: Path,
    num_objects: int = 2,
    timesteps: tuple[int, ...] = (0, 1, 2),
    views: int = 2,
    temporal: bool = True,
) -> list[np.ndarray]:
    """Write a small split in the ENR layout; returns the images in record order."""
    images = []
    for obj in range(num_objects):
        folder = root_split / f"obj{obj}"
        folder.mkdir(parents=True)
        params = {}
        for k, (t, v) in enumerate((t, v) for t in timesteps for v in range(views)):
            stem = f"{k:05d}"
            image = pixels(len(images))
            Image.fromarray(image).save(folder / f"{stem}.png")
            params[stem] = {"azimuth": 30.0 * v, "elevation": 10.0 * t - 20.0}
            if temporal:
                params[stem]["temporal"] = t
            images.append(image)
        (folder / "render_params.json").write_text(json.dumps(params))
    return images


def edit_params(folder: Path, edit: Callable[[dict], None]) -> None:
    path = folder / "render_params.json"
    params = json.loads(path.read_text())
    edit(params)
    path.write_text(json.dumps(params))


def test_loads_enr_static_format(tmp_path: Path) -> None:
    images = write_split(tmp_path / "train", num_objects=2, timesteps=(0,), views=3, temporal=False)
    data = RenderedViews(tmp_path / "train", image_size=SIZE)
    assert len(data) == 6
    assert data.object_names == ["obj0", "obj1"]
    np.testing.assert_array_equal(data.object_id, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.timestep, np.zeros(6))
    assert data.object_id.dtype == np.int64 and data.timestep.dtype == np.int64
    assert data.pose.dtype == np.float32 and data.pose.shape == (6, 2)
    np.testing.assert_allclose(data.pose[:3, 0], [0.0, 30.0, 60.0])
    np.testing.assert_array_equal(data.images, np.stack(images))


def test_item_is_a_view_pair_of_single_items(tmp_path: Path) -> None:
    images = write_split(tmp_path / "train")
    data = RenderedViews(tmp_path / "train", image_size=SIZE, num_timesteps=3)
    item = data[(1, 4)]
    assert isinstance(item, ViewPair)
    for image, index in ((item.source, 1), (item.target, 4)):
        assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
        expected = torch.from_numpy(images[index]).permute(2, 0, 1).float() / 255
        torch.testing.assert_close(image, expected)
    assert item.source_pose.shape == (2,) and item.source_pose.dtype == torch.float32
    torch.testing.assert_close(item.target_pose, torch.tensor([0.0, 0.0]))
    for scalar in (item.source_time, item.target_time, item.object_id):
        assert scalar.shape == () and scalar.dtype == torch.int64
    assert (int(item.source_time), int(item.target_time), int(item.object_id)) == (0, 2, 0)
    assert int(item.dt) == 2
    with pytest.raises(TypeError, match="pair"):
        data[3]


def test_default_collate_gives_batched_view_pair(tmp_path: Path) -> None:
    write_split(tmp_path / "train")
    data = RenderedViews(tmp_path / "train", image_size=SIZE)
    batch = next(iter(DataLoader(data, sampler=[(0, 1), (6, 8), (2, 3)], batch_size=3)))
    assert isinstance(batch, ViewPair)
    assert batch.source.shape == (3, 3, SIZE, SIZE)
    assert batch.source_pose.shape == (3, 2)
    assert batch.object_id.tolist() == [0, 1, 0]
    assert batch.dt.tolist() == [0, 1, 0]


def _extra_png(folder: Path) -> str:
    Image.fromarray(pixels(0)).save(folder / "00099.png")
    return "00099.png"


def _missing_png(folder: Path) -> str:
    (folder / "00001.png").unlink()
    return "00001"


def _corrupt_png(folder: Path) -> str:
    (folder / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return "00002.png"


def _truncated_png(folder: Path) -> str:
    path = folder / "00002.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "00002.png"


def _not_an_image(folder: Path) -> str:
    (folder / "00003.png").write_text("hello")
    return "00003.png"


def _wrong_size(folder: Path) -> str:
    Image.fromarray(pixels(0, size=2 * SIZE)).save(folder / "00003.png")
    return "data.image_size"


def _grayscale(folder: Path) -> str:
    Image.fromarray(pixels(0)[..., 0], mode="L").save(folder / "00003.png")
    return "grayscale"


def _missing_params(folder: Path) -> str:
    (folder / "render_params.json").unlink()
    return "render_params.json is missing"


def _invalid_json(folder: Path) -> str:
    (folder / "render_params.json").write_text("{not json")
    return "not valid JSON"


def _missing_azimuth(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].pop("azimuth"))
    return "'00002' has no 'azimuth'"


def _text_elevation(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].update(elevation="high"))
    return "elevation='high'"


def _nan_azimuth(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].update(azimuth=float("nan")))
    return "azimuth=nan"


def _huge_azimuth(folder: Path) -> str:  # finite in float64, inf in float32
    edit_params(folder, lambda p: p["00002"].update(azimuth=1e300))
    return "azimuth=1e+300; it must be a finite number of degrees in [-360, 360]"


def _elevation_past_the_pole(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].update(elevation=91.5))
    return "elevation=91.5; it must be a finite number of degrees in [-90, 90]"


def _late_timestep(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].update(temporal=3))
    return "data.num_timesteps to at least 4"


def _negative_timestep(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].update(temporal=-1))
    return "temporal=-1"


def _fractional_timestep(folder: Path) -> str:
    edit_params(folder, lambda p: p["00002"].update(temporal=1.5))
    return "temporal=1.5"


@pytest.mark.parametrize(
    "corrupt",
    [
        _extra_png,
        _missing_png,
        _corrupt_png,
        _truncated_png,
        _not_an_image,
        _wrong_size,
        _grayscale,
        _missing_params,
        _invalid_json,
        _missing_azimuth,
        _text_elevation,
        _nan_azimuth,
        _huge_azimuth,
        _elevation_past_the_pole,
        _late_timestep,
        _negative_timestep,
        _fractional_timestep,
    ],
)
def test_bad_input_raises_dataset_error_naming_the_file(
    tmp_path: Path, corrupt: Callable[[Path], str]
) -> None:
    write_split(tmp_path / "train")
    folder = tmp_path / "train" / "obj1"
    expected = corrupt(folder)
    with pytest.raises(DatasetError) as info:
        RenderedViews(tmp_path / "train", image_size=SIZE, num_timesteps=3)
    message = str(info.value)
    assert expected in message
    assert str(folder) in message
    # The PIL / json error is summarised in the message, not chained as a second trace.
    assert info.value.__suppress_context__ or info.value.__context__ is None
    assert isinstance(info.value, ValueError)


def test_missing_and_empty_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        RenderedViews(tmp_path / "val", image_size=SIZE)
    (tmp_path / "val").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        RenderedViews(tmp_path / "val", image_size=SIZE)
    (tmp_path / "val" / "obj0").mkdir()
    (tmp_path / "val" / "obj0" / "render_params.json").write_text("{}")
    with pytest.raises(DatasetError, match="holds no images"):
        RenderedViews(tmp_path / "val", image_size=SIZE)


def _write_single(path: Path, image: Image.Image) -> None:
    path.mkdir(parents=True)
    image.save(path / "00000.png")
    (path / "render_params.json").write_text(json.dumps({"00000": {"azimuth": 0, "elevation": 0}}))


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 10, 20, 255)  # opaque: kept
    rgba[0, 1] = (200, 10, 20, 0)  # transparent: white
    rgba[0, 2] = (0, 0, 0, 128)  # half black over white: mid grey
    _write_single(tmp_path / "train" / "obj", Image.fromarray(rgba, mode="RGBA"))
    images = RenderedViews(tmp_path / "train", image_size=SIZE).images
    assert images.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_array_equal(images[0, 0, 0], [200, 10, 20])
    np.testing.assert_array_equal(images[0, 0, 1], [255, 255, 255])
    assert np.all(np.abs(images[0, 0, 2].astype(int) - 127) <= 1)


def test_palette_is_converted_to_rgb(tmp_path: Path) -> None:
    index = np.zeros((SIZE, SIZE), dtype=np.uint8)
    index[:, SIZE // 2 :] = 1
    opaque = Image.fromarray(index, mode="P")
    opaque.putpalette([10, 20, 30, 250, 0, 0] + [0] * 762)
    transparent = opaque.copy()
    transparent.info["transparency"] = 1  # palette entry 1 is see-through: white
    _write_single(tmp_path / "train" / "a", opaque)
    _write_single(tmp_path / "train" / "b", transparent)
    images = RenderedViews(tmp_path / "train", image_size=SIZE).images
    np.testing.assert_array_equal(images[0, 0, 0], [10, 20, 30])
    np.testing.assert_array_equal(images[0, 0, -1], [250, 0, 0])
    np.testing.assert_array_equal(images[1, 0, 0], [10, 20, 30])
    np.testing.assert_array_equal(images[1, 0, -1], [255, 255, 255])


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path, image_size: int) -> np.ndarray:
        raise AssertionError(f"decoded {path} although the cache is valid")

    monkeypatch.setattr(dataset_mod, "_decode_png", fail)


def test_cache_is_a_memmap_reused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = write_split(tmp_path / "train")
    first = RenderedViews(tmp_path / "train", image_size=SIZE)
    caches = list((tmp_path / "train" / ".cache").glob("images_*.npy"))
    assert caches == [first.cache_path]
    assert not list((tmp_path / "train" / ".cache").glob(".tmp_*"))

    _forbid_decoding(monkeypatch)
    second = RenderedViews(tmp_path / "train", image_size=SIZE)
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(second.images, np.stack(images))
    pairs = [(i, (i + 1) % len(second)) for i in range(len(second))]
    for _epoch in range(2):
        for batch in DataLoader(second, sampler=pairs, batch_size=4):
            assert batch.source.shape[1:] == (3, SIZE, SIZE)


def test_cache_invalidated_when_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_split(tmp_path / "train")
    first = RenderedViews(tmp_path / "train", image_size=SIZE)
    changed = tmp_path / "train" / "obj0" / "00003.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 7, dtype=np.uint8)).save(changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    decoded: list[Path] = []
    original = dataset_mod._decode_png

    def counting(path: Path, image_size: int) -> np.ndarray:
        decoded.append(path)
        return original(path, image_size)

    monkeypatch.setattr(dataset_mod, "_decode_png", counting)
    second = RenderedViews(tmp_path / "train", image_size=SIZE)
    assert len(decoded) == len(second)
    assert second.cache_path != first.cache_path
    assert np.all(second.images[3] == 7)
    # The stale cache is gone; only the current one is left.
    assert list((tmp_path / "train" / ".cache").glob("images_*.npy")) == [second.cache_path]


def test_explicit_and_unwritable_cache_dir(tmp_path: Path) -> None:
    images = write_split(tmp_path / "train")
    elsewhere = RenderedViews(tmp_path / "train", image_size=SIZE, cache_dir=tmp_path / "c")
    assert elsewhere.cache_path.parent == tmp_path / "c"
    assert not (tmp_path / "train" / ".cache").exists()
    (tmp_path / "a_file").write_text("")
    in_memory = RenderedViews(tmp_path / "train", image_size=SIZE, cache_dir=tmp_path / "a_file")
    assert in_memory.cache_path is None
    np.testing.assert_array_equal(in_memory.images, np.stack(images))


def test_pickling_reopens_the_memmap(tmp_path: Path) -> None:
    write_split(tmp_path / "train")
    data = RenderedViews(tmp_path / "train", image_size=SIZE)
    blob = pickle.dumps(data)
    assert len(blob) < data.images.nbytes + 4096 or data.images.nbytes < 4096
    copy = pickle.loads(blob)
    assert isinstance(copy.images, np.memmap)
    torch.testing.assert_close(copy.image(5), data.image(5))


def test_static_mode_makes_each_timestep_an_object(tmp_path: Path) -> None:
    write_split(tmp_path / "train", num_objects=2, timesteps=(0, 2), views=2)
    data = RenderedViews(tmp_path / "train", image_size=SIZE, num_timesteps=3, static=True)
    np.testing.assert_array_equal(data.object_id, [0, 0, 2, 2, 3, 3, 5, 5])
    np.testing.assert_array_equal(data.timestep, np.zeros(8))
    np.testing.assert_array_equal(data.original_object_id, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(data.original_timestep, [0, 0, 2, 2, 0, 0, 2, 2])
    item = data[(2, 3)]
    assert int(item.object_id) == 2 and int(item.dt) == 0


def test_a_full_disk_while_caching_is_one_line_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_split(tmp_path / "train")

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset_mod.os, "posix_fallocate", full)
    with pytest.raises(DatasetError) as raised:
        RenderedViews(tmp_path / "train", image_size=SIZE)
    line = str(raised.value)
    assert "\n" not in line
    assert line.startswith("no space left on the device for the image cache ")
    assert " MB, " in line and " MB are free" in line
    assert list((tmp_path / "train" / ".cache").iterdir()) == []


def test_temporaries_of_killed_decodes_are_removed(tmp_path: Path) -> None:
    write_split(tmp_path / "train")
    dead = subprocess.Popen(["true"])
    dead.wait()
    cache = tmp_path / "train" / ".cache"
    cache.mkdir()
    (cache / f".tmp_{dead.pid}_abc.npy").write_bytes(b"half")
    (cache / f".tmp_{os.getpid()}_live.npy").write_bytes(b"someone writing")
    views = RenderedViews(tmp_path / "train", image_size=SIZE)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [views.cache_path.name, f".tmp_{os.getpid()}_live.npy"]
    )
