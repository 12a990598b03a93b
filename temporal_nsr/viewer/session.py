"""ViewerSession: one loaded model and the latent of the current image, behind the sliders."""

from __future__ import annotations

import logging
import math
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from temporal_nsr.atomic import atomic_folder
from temporal_nsr.data.images import UNBOUNDED, ImageLimits, open_image
from temporal_nsr.errors import UserError
from temporal_nsr.figures import (
    Figure,
    latent_slice_frames,
    latent_to_rgb,
    slot_strip,
    time_offsets,
    turntable_azimuths,
    write_figures,
)
from temporal_nsr.image_input import ImageError, ImageLike, image_batch
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.pictures import to_uint8

log = logging.getLogger(__name__)


class ViewerError(UserError):
    """A viewer setting or request that cannot be served; the message says what to change."""


class Exported(NamedTuple):
    """Files written by ``ViewerSession.export``."""

    folder: Path
    files: list[Path]  # <name>.gif, and <name>.mp4 when imageio-ffmpeg is installed


def _source_size(image: ImageLike) -> tuple[int, int]:
    """(width, height) of an image as given, before ``image_batch`` fits it to the model."""
    if isinstance(image, (str, Path)):
        with open_image(image) as opened:  # the header only
            return opened.size
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, (np.ndarray, Tensor)):
        shape = tuple(image.shape)
        # numpy images are (H, W[, 3 or 4]); tensors (3, H, W) or (B, 3, H, W).
        return (shape[1], shape[0]) if isinstance(image, np.ndarray) else (shape[-1], shape[-2])
    raise ImageError(f"cannot read an image from a {type(image).__name__}")


class ViewerSession:
    """The state of one viewer: a loaded model and the latent of the current image.

    ``set_image`` runs the encoder once and precomputes the time-slot strip and the latent
    slices; ``update`` then renders a pose and time offset from the kept latent.

    Args:
        renderer: the loaded model.
        turntable_views: azimuths in an exported turntable (a full turn).
        interpolation_steps: frames between two neighbouring slots in an exported time sweep.
        fps: frames per second of exported animations.
        limits: largest image file ``set_image`` decodes (checked on its header first).
    """

    def __init__(
        self,
        renderer: NovelViewRenderer,
        *,
        turntable_views: int = 36,
        interpolation_steps: int = 4,
        fps: float = 12.0,
        limits: ImageLimits = UNBOUNDED,
    ) -> None:
        if turntable_views < 1 or interpolation_steps < 0 or not fps > 0:
            raise ViewerError(
                f"turntable_views must be >= 1, interpolation_steps >= 0 and fps > 0; got "
                f"{turntable_views}, {interpolation_steps} and {fps}"
            )
        self.renderer = renderer
        self.turntable_views = turntable_views
        self.interpolation_steps = interpolation_steps
        self.fps = fps
        self.limits = limits
        self.name = ""
        self.note = ""
        self.latent: Tensor | None = None  # (K, C, D, H, W)
        self.input_image: np.ndarray | None = None  # (S, S, 3) uint8, what the network saw
        self.strip: np.ndarray | None = None  # (H, W, 3) uint8: input, then every slot
        self._slices: Tensor | None = None  # (K, 3, H', W') latent slices per slot

    @property
    def max_offset(self) -> int:
        return self.renderer.max_offset

    def set_image(self, image: ImageLike, name: str | None = None) -> str:
        """Encode an image and keep its latent; every later ``update`` renders from it.

        Args:
            image: one image, any kind ``NovelViewRenderer.encode`` takes (a path, PIL image,
                uint8 array, (3, H, W) tensor).
            name: shown in the note; default the file name, else "image".

        Returns:
            A note about the input: its size, and how it was resized when it is not S x S.

        Raises:
            ImageError: not an image, an unreadable file, or an array of the wrong kind.
            ImageTooLargeError: a file over ``limits``, refused before decoding.
        """
        size = self.renderer.image_size
        batch = image_batch(image, size, self.limits)  # (B, 3, S, S); ImageError for non-images
        if batch.shape[0] != 1:
            raise ImageError(f"the viewer takes one image at a time, got {batch.shape[0]}")
        width, height = _source_size(image)
        if name is None:
            name = Path(image).name if isinstance(image, (str, Path)) else "image"
        log.info("input image: %s, %dx%d px", name, width, height)
        latent = self.renderer.encode(batch)[0]  # (K, C, D, H, W)
        self.strip = to_uint8(slot_strip(self.renderer, latent, batch))
        self._slices = latent_slice_frames(latent_to_rgb(latent.cpu()))  # (K, 3, H', W')
        self.input_image = to_uint8(batch[0])
        self.latent = latent
        self.name = name
        self.note = f"**{name}**: {width}x{height} px"
        if (width, height) != (size, size):
            self.note += (
                f", resized to the model's {size}x{size} px (then padded to a square with "
                "white): an object that fills another part of the frame than in training "
                "renders worse"
            )
        return self.note

    def _require_image(self) -> Tensor:
        if self.latent is None:
            raise ViewerError("no image yet: upload an image or pick an example first")
        return self.latent

    def close(self) -> None:
        """Drop the latent and the pictures made from it (the session's memory)."""
        self.latent = self.input_image = self.strip = self._slices = None

    @staticmethod
    def _check_pose(azimuth: float, elevation: float) -> tuple[float, float]:
        """Refuse poses the sliders cannot give: NaN, infinite or beyond a turn / the poles."""
        az, el = float(azimuth), float(elevation)
        if not (math.isfinite(az) and abs(az) <= 360 and math.isfinite(el) and abs(el) <= 90):
            raise ViewerError(
                f"azimuth={azimuth} and elevation={elevation} must be degrees in [-360, 360] "
                "and [-90, 90]"
            )
        return az, el

    def _check_dt(self, dt: float) -> float:
        m = self.max_offset
        if not abs(dt) <= m:
            raise ViewerError(f"dt={dt} is outside [-{m}, {m}] (the model's max_offset is {m})")
        return float(dt)

    def update(self, azimuth: float, elevation: float, dt: float = 0.0) -> np.ndarray:
        """Render the current image's latent at one pose and time: one slider move.

        Args:
            azimuth: degrees about the input camera's vertical axis, relative to the input view.
            elevation: degrees, relative to the input view.
            dt: time steps after the input's time, |dt| <= max_offset; fractions interpolate
                the two neighbouring slots.

        Returns:
            (S, S, 3) uint8 image, equal to ``to_uint8(renderer.render(latent, azimuth,
            elevation, dt)[0])``.

        Raises:
            ViewerError: no image set yet, |dt| > max_offset, or a pose that is NaN, infinite
                or out of range.
        """
        latent = self._require_image()
        azimuth, elevation = self._check_pose(azimuth, elevation)
        view = self.renderer.render(latent, azimuth, elevation, self._check_dt(dt))
        return to_uint8(view[0])

    def latent_slices(self, dt: float = 0.0) -> np.ndarray:
        """The latent as RGB depth slices at dt; fractions blend the two neighbouring slots.

        The colour map of ``latent_to_rgb`` is affine in the latent, so blending the slot
        pictures (with the model's own slot selection) is the colouring of the interpolated
        latent, as the renderer interpolates it.

        Returns:
            (H', W', 3) uint8: the D depth slices of the slot in a square grid.
        """
        self._require_image()
        offset = torch.tensor([self._check_dt(dt)])
        # (1, K, 3, H', W') -> (1, 3, H', W'): slot dt + max_offset, blended like a latent
        frame = self.renderer.renderer.select_slot(self._slices[None], offset, check=False)
        return to_uint8(frame[0])

    def export(
        self, kind: str, out_dir: Path, azimuth: float, elevation: float, dt: float
    ) -> Exported:
        """Write the turntable or the time sweep of the current image at the current pose.

        Args:
            kind: "turntable" (``turntable_views`` azimuths over a full turn starting at
                ``azimuth``, at ``elevation`` and ``dt``) or "time_sweep" (dt from -max_offset
                to max_offset with ``interpolation_steps`` frames between slots, at the pose).
            out_dir: parent folder; the files go to a new sub-folder, which appears whole
                (``atomic.atomic_folder``).
            azimuth, elevation, dt: the current slider values.

        Raises:
            ViewerError: no image yet, an unknown kind, |dt| > max_offset, or a time sweep of a
                rotation-only model (max_offset = 0).
        """
        latent = self._require_image()
        azimuth, elevation = self._check_pose(azimuth, elevation)
        dt = self._check_dt(dt)
        m = self.max_offset
        if kind == "turntable":
            az = turntable_azimuths(self.turntable_views, float(azimuth))
            frames = self.renderer.render(latent, az, float(elevation), dt)
        elif kind == "time_sweep":
            if m == 0:
                raise ViewerError("a rotation-only model (max_offset = 0) has no time to sweep")
            offsets = time_offsets(m, self.interpolation_steps)
            frames = self.renderer.render(latent, float(azimuth), float(elevation), offsets)
        else:
            raise ViewerError(f"unknown export kind {kind!r}: use turntable or time_sweep")
        stem = Path(self.name).stem or "image"
        label = f"{stem}_{kind}_az{azimuth:g}_el{elevation:g}" + (
            f"_dt{dt:g}" if kind == "turntable" else ""
        )
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}"
        folder = Path(out_dir) / f"{label}_{stamp}"
        with atomic_folder(folder, marker=None) as staging:  # a new name: never replaces
            written = write_figures({kind: Figure(None, frames.cpu())}, staging, self.fps)
            (staging / EXPORT_MARKER).write_text("")
        return Exported(folder, [folder / path.name for path in written])


EXPORT_MARKER = ".viewer_export"  # in every folder ViewerSession.export writes


def prune_exports(out_dir: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest export folders of ``out_dir`` (those holding
    ``EXPORT_MARKER``; nothing else there is touched).

    Returns:
        The removed folders.
    """
    folders = [p for p in Path(out_dir).glob(f"*/{EXPORT_MARKER}") if not p.parent.is_symlink()]
    newest_first = sorted((p.parent for p in folders), key=lambda p: p.stat().st_mtime)[::-1]
    for folder in newest_first[keep:]:
        shutil.rmtree(folder, ignore_errors=True)
    return newest_first[keep:]


class SessionPool:
    """The viewer's sessions, bounded in number and idle time, so memory stays bounded.

    Each browser tab holds only a key; the pool holds its ``ViewerSession`` (the latent and its
    pictures, megabytes each). A session idle for longer than ``idle_s`` expires, and beyond
    ``max_sessions`` the least recently used one does; an expired session is closed (its latent
    freed), and its key then finds nothing.

    Args:
        max_sessions: sessions kept at most.
        idle_s: seconds after its last use that a session expires.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self, max_sessions: int, idle_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_sessions < 1 or not idle_s > 0:
            raise ViewerError(
                f"sessions.max must be >= 1 and sessions.idle_s > 0; got {max_sessions} and "
                f"{idle_s}"
            )
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[ViewerSession, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: ViewerSession) -> str:
        """Keep ``session``; return its key. Expired and surplus sessions are closed first."""
        key = secrets.token_hex(16)
        with self._lock:
            self._sessions[key] = (session, self._clock())
            self._expire()
        return key

    def get(self, key: str | None) -> ViewerSession | None:
        """The session of ``key``, marked as used now; None if it expired or never existed."""
        with self._lock:
            self._expire()
            entry = self._sessions.get(key) if isinstance(key, str) else None
            if entry is None:
                return None
            self._sessions[key] = (entry[0], self._clock())
            self._sessions.move_to_end(key)
            return entry[0]

    def _expire(self) -> None:
        now = self._clock()
        while self._sessions:
            key, (session, used) = next(iter(self._sessions.items()))
            if len(self._sessions) <= self.max_sessions and now - used <= self.idle_s:
                break
            del self._sessions[key]
            session.close()
