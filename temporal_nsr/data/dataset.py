"""RenderedViews: (object, timestep, view) records from render_params.json; index pair -> ViewPair.

On-disk format (docs/design.md §2, compatible with the original ENR datasets)::

    <root>/<split>/<object>/NNNNN.png
    <root>/<split>/<object>/render_params.json   # {"NNNNN": {"azimuth": deg, "elevation": deg,
                                                 #            "temporal": int}, ...}

A record without ``"temporal"`` is timestep 0, so ENR's static datasets (chairs, cars, ...) load
unchanged. Images are decoded from PNG once per split into a uint8 ``.npy`` cache that every
later construction, epoch and DataLoader worker reads through ``np.load(mmap_mode="r")``.

Cache layout: ``<cache_dir>/images_<S>px_<fingerprint>.npy`` holding (N, S, S, 3) uint8 in
record order, where ``cache_dir`` defaults to ``<root_split>/.cache`` and the fingerprint hashes
the image size, the cache format version and every PNG's relative path, byte size and mtime.
Adding, removing, replacing or touching a PNG therefore changes the name and forces one
re-decode; the stale file of the same size is then deleted. The file is written to a temporary
name in the same folder (``.tmp_<pid>_*.npy``, its blocks reserved first so that a full disk is
a one-line ``DatasetError``, not a SIGBUS) and moved into place with ``os.replace``, so a crash
or several DDP ranks decoding at once never leave a half-written cache behind; temporaries of
killed processes are removed at the next decode.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from temporal_nsr.atomic import pid_alive
from temporal_nsr.batch import ViewPair
from temporal_nsr.data.errors import DatasetError
from temporal_nsr.data.format import PARAMS_FILE
from temporal_nsr.data.images import GrayscaleError, ImageFileError, open_image, rgb_pixels

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".cache"
# Bump when the decoded content changes for the same files (e.g. another alpha convention).
CACHE_VERSION = 1
# Threads for the one-off decode; PNG inflate releases the GIL, so a few threads help.
_DECODE_THREADS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True)
class _Record:
    png: Path
    object_index: int
    timestep: int
    azimuth_deg: float
    elevation_deg: float


TMP_PREFIX = ".tmp_"  # a cache being written: .tmp_<pid>_<random>.npy


def _reserve(path: Path) -> None:
    """Allocate the whole file on disk, so that a full disk is an OSError here, not a SIGBUS."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _remove_dead_temporaries(cache_dir: Path) -> None:
    """Remove caches left half-written by killed processes (``.tmp_<pid>_*.npy``, pid gone)."""
    for tmp in cache_dir.glob(f"{TMP_PREFIX}*.npy"):
        pid = tmp.name[len(TMP_PREFIX) :].split("_", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            log.info("Removing %s, left by an interrupted decode", tmp)
            tmp.unlink(missing_ok=True)


def _decode_png(path: Path, image_size: int) -> np.ndarray:
    """Decode one image file to RGB pixels, rejecting anything that is not an S x S colour image.

    The policy is ``data/images.py``'s (transparency over white, colour modes to RGB) with
    greyscale refused: in a dataset it is almost always a wrong file.

    Args:
        path: image file.
        image_size: required side S in pixels.

    Returns:
        (S, S, 3) uint8 RGB pixels.

    Raises:
        DatasetError: unreadable, corrupt or truncated file, wrong size, or grayscale.
    """
    try:
        with open_image(path) as img:
            if img.size != (image_size, image_size):
                width, height = img.size
                raise DatasetError(
                    f"{path} is {width}x{height} px but data.image_size is {image_size}: "
                    f"regenerate the dataset at {image_size} px or set "
                    f"data.image_size={width}"
                    + ("" if width == height else " (images must be square)")
                )
            return rgb_pixels(img, grayscale=False)
    except GrayscaleError as err:
        raise DatasetError(
            f"{err}; images must be colour: re-render it in RGB or convert it, e.g. "
            "Image.open(p).convert('RGB').save(p)"
        ) from None
    except ImageFileError as err:
        cause = err.cause or err
        raise DatasetError(
            f"{path} is corrupt, truncated or not an image ({type(cause).__name__}: {cause}): "
            f"regenerate the dataset, or delete the file and its entry in {PARAMS_FILE}"
        ) from None


# |angle| bounds in degrees: a full turn either way for azimuth, the poles for elevation. Far
# inside float32's range, so a value that passes stays finite as a tensor.
ANGLE_BOUNDS_DEG = {"azimuth": 360.0, "elevation": 90.0}


def _number(value: Any, field: str, params: Path, stem: str) -> float:
    """A pose angle of a params file, checked: a finite number within ``ANGLE_BOUNDS_DEG``."""
    bound = ANGLE_BOUNDS_DEG[field]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or abs(value) > bound
    ):
        raise DatasetError(
            f"{params}: entry {stem!r} has {field}={value!r}; it must be a finite number of "
            f"degrees in [-{bound:g}, {bound:g}]: fix or regenerate {params.name}"
        )
    return float(value)


def _scan_object(obj_dir: Path, object_index: int, num_timesteps: int | None) -> list[_Record]:
    """Read one object folder into records ordered by file stem."""
    params = obj_dir / PARAMS_FILE
    if not params.is_file():
        raise DatasetError(
            f"{params} is missing: every object folder needs a {PARAMS_FILE} mapping each PNG "
            "stem to its azimuth/elevation (and temporal); regenerate the dataset"
        )
    try:
        entries = json.loads(params.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{params} is not valid JSON ({err}): fix or regenerate it") from None
    if not isinstance(entries, Mapping):
        raise DatasetError(
            f"{params} must hold a JSON object mapping PNG stems to pose records, "
            f"not {type(entries).__name__}"
        )
    pngs = {p.stem: p for p in obj_dir.glob("*.png") if p.is_file()}
    unlisted = sorted(set(pngs) - set(entries))
    if unlisted:
        raise DatasetError(
            f"{pngs[unlisted[0]]} has no entry in {params}"
            + (f" (nor do {len(unlisted) - 1} more PNGs)" if len(unlisted) > 1 else "")
            + f": add {unlisted[0]!r} to {PARAMS_FILE} or delete the image"
        )
    orphans = sorted(set(entries) - set(pngs))
    if orphans:
        raise DatasetError(
            f"{params} lists {orphans[0]!r} but {obj_dir / (orphans[0] + '.png')} does not exist"
            + (f" (nor do {len(orphans) - 1} more)" if len(orphans) > 1 else "")
            + ": restore the image or remove the entry"
        )
    records = []
    for stem in sorted(entries):
        entry = entries[stem]
        if not isinstance(entry, Mapping):
            raise DatasetError(
                f"{params}: entry {stem!r} must be an object with azimuth and elevation, "
                f"not {entry!r}"
            )
        for field in ("azimuth", "elevation"):
            if field not in entry:
                raise DatasetError(
                    f"{params}: entry {stem!r} has no {field!r} (degrees): fix or regenerate "
                    f"{PARAMS_FILE}"
                )
        t = entry.get("temporal", 0)
        if isinstance(t, float) and t.is_integer():
            t = int(t)
        if isinstance(t, bool) or not isinstance(t, int):
            raise DatasetError(
                f"{params}: entry {stem!r} has temporal={t!r}; it must be an integer timestep"
            )
        if t < 0 or (num_timesteps is not None and t >= num_timesteps):
            upper = "inf" if num_timesteps is None else num_timesteps
            fix = f"set data.num_timesteps to at least {t + 1} or fix" if t >= 0 else "fix"
            raise DatasetError(
                f"{params}: entry {stem!r} has temporal={t}, outside [0, {upper}): "
                f"{fix} {PARAMS_FILE}"
            )
        records.append(
            _Record(
                png=pngs[stem],
                object_index=object_index,
                timestep=t,
                azimuth_deg=_number(entry["azimuth"], "azimuth", params, stem),
                elevation_deg=_number(entry["elevation"], "elevation", params, stem),
            )
        )
    return records


def _fingerprint(root_split: Path, pngs: list[Path], image_size: int) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION} {image_size}px\n".encode())
    for png in pngs:
        stat = png.stat()
        digest.update(
            f"{png.relative_to(root_split)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()[:16]


def _decode_into(out: np.ndarray, pngs: list[Path], image_size: int) -> None:
    """Fill (N, S, S, 3) ``out`` with the decoded ``pngs`` using a few threads."""
    with ThreadPoolExecutor(max_workers=_DECODE_THREADS) as pool:
        # Looked up at call time so tests can swap _decode_png to prove the cache is used.
        for k, pixels in enumerate(pool.map(lambda p: _decode_png(p, image_size), pngs)):
            out[k] = pixels


class RenderedViews(torch.utils.data.Dataset):
    """Rendered views of one split; ``dataset[(i, j)]`` is the ViewPair source i -> target j.

    Records are ordered by object folder name, then file stem. Objects are numbered by their
    folder's position in the sorted listing of ``root_split`` (hidden folders skipped), so the
    same object folders give the same ids in every split.

    With ``static=True`` every (object, timestep) becomes its own static object, to train the
    rotation-only model on temporal data: ``object_id = object * num_timesteps + timestep``
    (stride = max timestep in the split + 1 when ``num_timesteps`` is None), which is stable
    across splits but may leave gaps, and ``timestep`` is 0 for every record. The folder's object
    index and the true timestep stay available as ``original_object_id`` / ``original_timestep``.

    Args:
        root_split: ``<root>/<split>`` folder holding one sub-folder per object.
        image_size: required image side S in pixels; other sizes are an error.
        num_timesteps: timesteps must lie in [0, num_timesteps); None checks only >= 0.
        static: report each (object, timestep) as a separate object at timestep 0.
        cache_dir: where the decoded-image cache lives; default ``<root_split>/.cache``.

    Raises:
        DatasetError: missing or empty split, or any malformed file (see ``_scan_object`` and
            ``_decode_png``); the message names the file and how to fix it.
    """

    def __init__(
        self,
        root_split: Path | str,
        image_size: int,
        num_timesteps: int | None = None,
        static: bool = False,
        cache_dir: Path | str | None = None,
    ) -> None:
        self.root_split = Path(root_split)
        self.image_size = int(image_size)
        self.static = static
        if not self.root_split.is_dir():
            raise DatasetError(
                f"split folder {self.root_split} does not exist: check data.root, or generate "
                "the dataset first (train does: temporal_nsr.data.folders.prepare_dataset)"
            )
        object_dirs = sorted(
            p for p in self.root_split.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        records = [
            rec
            for index, obj_dir in enumerate(object_dirs)
            for rec in _scan_object(obj_dir, index, num_timesteps)
        ]
        if not records:
            raise DatasetError(
                f"split folder {self.root_split} holds no images: expected "
                f"<object>/NNNNN.png files with a {PARAMS_FILE} per object; regenerate the dataset"
            )
        self.object_names: list[str] = [p.name for p in object_dirs]
        self.files: list[Path] = [rec.png for rec in records]
        self.original_object_id = np.array([r.object_index for r in records], dtype=np.int64)
        self.original_timestep = np.array([r.timestep for r in records], dtype=np.int64)
        # (N, 2) azimuth, elevation in degrees.
        self.pose = np.array(
            [(r.azimuth_deg, r.elevation_deg) for r in records], dtype=np.float32
        ).reshape(-1, 2)
        if static:
            stride = num_timesteps or int(self.original_timestep.max()) + 1
            self.object_id = self.original_object_id * stride + self.original_timestep
            self.timestep = np.zeros_like(self.original_timestep)
        else:
            self.object_id = self.original_object_id.copy()
            self.timestep = self.original_timestep.copy()
        self.cache_dir = (
            Path(cache_dir) if cache_dir is not None else self.root_split / CACHE_DIRNAME
        )
        self.cache_path: Path | None = None
        self.images = self._load_images()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: tuple[int, int]) -> ViewPair:
        """Return the pair source ``index[0]`` -> target ``index[1]`` (record indices)."""
        if not isinstance(index, tuple) or len(index) != 2:
            raise TypeError(
                f"RenderedViews is indexed by a (source, target) pair of record indices, got "
                f"{index!r}; use .image(i) for a single image"
            )
        i, j = index
        return ViewPair(
            source=self.image(i),
            target=self.image(j),
            source_pose=torch.from_numpy(self.pose[i].copy()),
            target_pose=torch.from_numpy(self.pose[j].copy()),
            source_time=torch.tensor(int(self.timestep[i]), dtype=torch.int64),
            target_time=torch.tensor(int(self.timestep[j]), dtype=torch.int64),
            object_id=torch.tensor(int(self.object_id[i]), dtype=torch.int64),
        )

    def image(self, i: int) -> torch.Tensor:
        """Return record ``i`` as a (3, S, S) float32 tensor in [0, 1]."""
        # (S, S, 3) uint8 from the memmap -> (3, S, S) float32.
        pixels = torch.from_numpy(np.array(self.images[i]))
        return pixels.permute(2, 0, 1).contiguous().float().div_(255.0)

    def mean_image(self, chunk: int = 256) -> torch.Tensor:
        """Return the mean of all images, summed a chunk at a time to bound memory.

        Args:
            chunk: images summed per step.

        Returns:
            (3, S, S) float32 in [0, 1].
        """
        total = np.zeros(self.images.shape[1:], dtype=np.float64)
        for start in range(0, len(self.images), chunk):
            total += self.images[start : start + chunk].sum(axis=0, dtype=np.float64)
        mean = total / (len(self.images) * 255.0)
        # (S, S, 3) -> (3, S, S)
        return torch.from_numpy(mean.astype(np.float32)).permute(2, 0, 1).contiguous()

    def _load_images(self) -> np.ndarray:
        """Open the cached (N, S, S, 3) uint8 images, decoding the PNGs first if needed."""
        n, size = len(self.files), self.image_size
        name = f"images_{size}px_{_fingerprint(self.root_split, self.files, size)}.npy"
        path = self.cache_dir / name
        if path.is_file():
            try:
                images = np.load(path, mmap_mode="r")
                if images.shape == (n, size, size, 3) and images.dtype == np.uint8:
                    self.cache_path = path
                    return images
            except (OSError, ValueError) as err:
                log.warning("Ignoring unreadable image cache %s (%s); re-decoding", path, err)
        log.info("Decoding %d PNGs from %s into %s", n, self.root_split, path)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            _remove_dead_temporaries(self.cache_dir)
            prefix = f"{TMP_PREFIX}{os.getpid()}_"
            fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".npy", dir=self.cache_dir)
            os.close(fd)
        except OSError as err:
            log.warning(
                "Cannot write the image cache in %s (%s): keeping %d decoded images in memory",
                self.cache_dir,
                err,
                n,
            )
            images = np.empty((n, size, size, 3), dtype=np.uint8)
            _decode_into(images, self.files, size)
            return images
        tmp = Path(tmp_name)
        try:
            out = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3)
            )
            # Reserve the blocks now: writing a sparse memmap on a full disk is a SIGBUS.
            _reserve(tmp)
            _decode_into(out, self.files, size)
            out.flush()
            del out
            os.replace(tmp, path)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            need = n * size * size * 3
            free = shutil.disk_usage(self.cache_dir).free
            raise DatasetError(
                f"no space left on the device for the image cache {path}: it needs "
                f"{need / 2**20:.0f} MB, {free / 2**20:.0f} MB are free; free some space there"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        for stale in self.cache_dir.glob(f"images_{size}px_*.npy"):
            if stale != path:
                stale.unlink(missing_ok=True)
        self.cache_path = path
        return np.load(path, mmap_mode="r")

    def __getstate__(self) -> dict[str, Any]:
        # Spawned DataLoader workers reopen the memmap instead of receiving a pickled copy.
        state = self.__dict__.copy()
        if self.cache_path is not None:
            state["images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.images is None:
            self.images = np.load(self.cache_path, mmap_mode="r")
