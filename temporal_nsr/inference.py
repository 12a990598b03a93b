"""Inference API: load a trained run and render novel views of one image at any pose and time.

```python
from temporal_nsr.inference import NovelViewRenderer

renderer = NovelViewRenderer.from_run("outputs/train/<run>")   # best checkpoint, GPU if any
latent = renderer.encode("bar.png")                            # (1, K, C, D, H, W)
views = renderer.render(latent, azimuth=[0, 90, 180], elevation=20, dt=2.5)  # (3, 3, S, S)
```

Poses are RELATIVE to the input view. The network only uses the rotation between two poses,
R(target) @ R(source)^T with R(az, el) = R_z(el) @ R_y(az) (``model/rotation.py``), so the input
camera is taken as pose (0, 0) and rendering at (az, el) applies R(az, el) to the scene as
inferred in the input camera's frame: no pose is needed for the input image,
``render(latent, 0, 0, 0)`` reproduces the input view, azimuth turns the scene about the input
camera's vertical (grid y) axis and elevation about its grid z axis. A dataset view at absolute
(az_t, el_t) of an input taken at (az_s, 0) is ``render(latent, az_t - az_s, el_t)``; for an
input at another elevation use ``SceneRenderer.render_views`` with both absolute poses.

Inputs to ``encode`` (``temporal_nsr.image_input``): a (B, 3, S, S) or (3, S, S) float
tensor in [0, 1], a PIL image, a path to an image file, an (H, W), (H, W, 3) or (H, W, 4)
uint8 numpy array (float arrays are read
as [0, 1]), or a list of these. Transparency is composited over WHITE (the background of the
training renders), palette and other colour modes become RGB, grayscale is replicated into
three channels. An image of another size is padded with white to a square (keeping its aspect
ratio) and resized to S x S with a logged warning: the network only knows S x S inputs, and an
object that fills a different fraction of the frame than in training is rendered worse.

Nothing is cached between calls: ``encode`` returns the latent and the caller keeps it.

``NovelViewRenderer.from_checkpoint(path)`` loads a checkpoint file alone instead of a run
folder (``temporal_nsr.runs.load_checkpoint``): a .ckpt written by ``temporal_nsr.train`` (it
stores its run's config) or an original ENR or temporal-ENR file (see
``temporal_nsr.enr_checkpoint`` for the format and the slot mapping).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor

from temporal_nsr.acceleration import inference_dtype, to_channels_last
from temporal_nsr.camera_path import CameraPath, CameraPathError
from temporal_nsr.image_input import ImageLike, image_batch
from temporal_nsr.machine import resolve_device
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import Run, load_checkpoint, load_model, load_run

log = logging.getLogger(__name__)

Angles = float | Sequence[float] | Tensor
Offsets = int | float | Sequence[float] | Tensor


class NovelViewRenderer:
    """A trained SceneRenderer in eval mode behind an image-in, images-out interface.

    Args:
        renderer: the network (e.g. ``runs.load_run(...).renderer``); switched to eval mode and
            moved to ``device`` and the inference dtype IN PLACE.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
        config: the run config it came from (``from_run`` sets it), for reference.
        checkpoint: the checkpoint file it came from (``from_run`` sets it), for reference.
        precision: "fp32" (default: the training numbers), "bf16" (about 2x faster where the
            hardware has native bfloat16; renders within ~40 dB PSNR of fp32) or "auto" (bf16
            where native, else fp32). See ``temporal_nsr.acceleration``.
        channels_last: channels-last convolution weights and inputs. None: on with bf16 (where
            oneDNN's kernels want it); with fp32 on a CPU only the decoder's 2D convolutions
            (a novel view 7% faster; the 3D 1x1x1 convolutions are slower channels-last and
            the encoder gains nothing: docs/performance.md); off with fp32 on a GPU. True: every
            convolution; False: none.
        compile: ``torch.compile`` the encoder and decoder (the first call of each new batch
            size compiles, tens of seconds on a CPU; see docs/performance.md).
    """

    def __init__(
        self,
        renderer: SceneRenderer,
        device: str | torch.device = "auto",
        config: DictConfig | None = None,
        checkpoint: Path | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
        compile: bool = False,
    ) -> None:
        self._device = resolve_device(device)
        self.dtype = inference_dtype(precision, self._device)
        self.channels_last = (
            self.dtype == torch.bfloat16 if channels_last is None else channels_last
        )
        self.renderer = renderer.to(self._device, self.dtype).eval()
        if self.channels_last:
            to_channels_last(self.renderer)
        elif channels_last is None and self._device.type == "cpu":
            to_channels_last(self.renderer.decoder, dims=(2,))
        if compile:
            self.renderer.encoder = torch.compile(self.renderer.encoder)
            self.renderer.decoder = torch.compile(self.renderer.decoder)
        # Views decoded together: on a CPU, small chunks stay in cache and run faster per view
        # than large batches (docs/performance.md); a GPU wants large batches.
        self.chunk_size = 4 if self._device.type == "cpu" else 64
        self.config = config
        self.checkpoint = checkpoint

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        checkpoint: str = "best",
        device: str | torch.device = "auto",
        **options: Any,
    ) -> NovelViewRenderer:
        """Load a training run folder (``.hydra/config.yaml`` + ``checkpoints/``).

        Args:
            run_dir: the run's output folder.
            checkpoint: "best", "last" or a path to a .ckpt file.
            device: see the class docstring.
            options: ``precision``, ``channels_last``, ``compile`` (see the class docstring).

        Raises:
            CheckpointError: missing run folder or checkpoint, or one of another config.
        """
        device = resolve_device(device)
        dtype = inference_dtype(options.get("precision", "fp32"), device)
        run = load_run(run_dir, checkpoint, str(device), dtype)
        return cls.from_loaded(run, device, **options)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "auto", **options: Any
    ) -> NovelViewRenderer:
        """Load a checkpoint file alone: a .ckpt of ours (its stored config; one written
        before checkpoints stored it, inside its run folder), or an original ENR or
        temporal-ENR file (a rotation-only model for ENR, max_offset = T // 2 - 1 for the
        fork's T slots); see ``load_checkpoint``. ``options`` as for ``from_run``.

        Raises:
            CheckpointError: unreadable file or unknown format, or an old .ckpt without its
                run folder.
        """
        device = resolve_device(device)
        dtype = inference_dtype(options.get("precision", "fp32"), device)
        return cls.from_loaded(load_checkpoint(path, str(device), dtype), device, **options)

    @classmethod
    def from_loaded(
        cls, run: Run, device: str | torch.device = "auto", **options: Any
    ) -> NovelViewRenderer:
        """Wrap a loaded ``runs.Run`` (``load_model``, ``load_run``, ``load_checkpoint``)."""
        return cls(run.renderer, device, run.cfg, run.checkpoint, **options)

    @property
    def max_offset(self) -> int:
        """Largest |dt| in time steps the latent represents; it holds K = 2 * max_offset + 1."""
        return self.renderer.max_offset

    @property
    def image_size(self) -> int:
        """Side S in pixels of the input and rendered images."""
        return self.renderer.encoder.image_size

    @property
    def device(self) -> torch.device:
        return self._device

    def encode(self, images: ImageLike | Sequence[ImageLike]) -> Tensor:
        """Infer the latent scenes of images (any kind the module docstring lists).

        Returns:
            (B, K, C, D, H, W) latent on ``device`` (an inference tensor: no autograd); slot k
            is the scene dt = k - max_offset steps after the input's time, in the input
            camera's frame.
        """
        batch = image_batch(images, self.image_size).to(self._device, self.dtype)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.renderer.encode(batch)

    def _single(self, latent: Tensor) -> Tensor:
        """(1, K, C, D, H, W) or (K, C, D, H, W) -> (K, C, D, H, W) on ``device``."""
        if latent.dim() == 6 and latent.shape[0] == 1:
            latent = latent[0]
        slots = self.renderer.encoder.num_slots
        if latent.dim() != 5 or latent.shape[0] != slots:
            raise ValueError(
                f"expected the latent of ONE image, (1, K, C, D, H, W) or (K, C, D, H, W) with "
                f"K = {slots}; got {tuple(latent.shape)} (index a batch "
                "latent as latent[i])"
            )
        return latent.to(self._device, self.dtype)

    def _vector(self, values: Angles | Offsets, name: str) -> Tensor:
        """A number or 1D sequence -> 1D tensor on ``device`` (integers stay integers)."""
        values = torch.as_tensor(values, device=self._device)
        if values.dim() > 1:
            raise ValueError(f"{name} must be a number or 1D, got shape {tuple(values.shape)}")
        return values.reshape(-1) if values.is_floating_point() else values.reshape(-1).long()

    def scene(self, latent: Tensor, dt: Offsets = 0) -> Tensor:
        """The scene(s) of one image moved by dt, before rotation and decoding.

        Args:
            latent: (1, K, C, D, H, W) or (K, C, D, H, W) latent of one image.
            dt: a number or (N,) offsets in time steps; integers pick a slot, fractions
                linearly interpolate the two neighbouring slots.

        Returns:
            (N, C, D, H, W) scenes.

        Raises:
            ValueError: some |dt| > max_offset.
        """
        latent, dt = self._single(latent), self._vector(dt, "dt")
        with torch.inference_mode():
            # (K, C, D, H, W) -> (N, K, C, D, H, W) without copying; then one slot each.
            return self.renderer.select_slot(latent.expand(len(dt), *latent.shape), dt)

    def render(
        self,
        latent: Tensor,
        azimuth: Angles = 0.0,
        elevation: Angles = 0.0,
        dt: Offsets = 0,
        chunk_size: int | None = 0,
        source_pose: Sequence[float] | Tensor | None = None,
    ) -> Tensor:
        """Render one image's latent at N poses and time offsets.

        Args:
            latent: (1, K, C, D, H, W) or (K, C, D, H, W), from ``encode``.
            azimuth: degrees relative to the input view (absolute with ``source_pose``); a
                number, list or (N,) tensor.
            elevation: degrees relative to the input view (absolute with ``source_pose``); same
                forms.
            dt: time steps after the input's time, |dt| <= max_offset; integers pick a slot,
                fractions interpolate. ``azimuth``, ``elevation`` and ``dt`` broadcast
                together to N views; (0, 0, 0) reproduces the input view.
            chunk_size: decode at most this many views at once (bounds memory); 0: the
                device's default ``self.chunk_size`` (fastest per view); None decodes
                all N together.
            source_pose: None: poses are relative to the input view. (azimuth, elevation) in
                degrees: the input view's ABSOLUTE pose (the dataset's convention), and
                ``azimuth``, ``elevation`` are absolute target poses: the rotation rendered is
                R(target) R(source)^T, right at any source elevation (subtracting angles is
                right only for a source at elevation 0).

        Returns:
            (N, 3, S, S) float32 images in [0, 1] on ``device``.

        Raises:
            ValueError: some |dt| > max_offset (the message gives the bound), arguments that do
                not broadcast to one dimension, or a latent of more than one image.
        """
        latent = self._single(latent)
        az = self._vector(azimuth, "azimuth").float()
        el = self._vector(elevation, "elevation").float()
        offsets = self._vector(dt, "dt")
        try:
            az, el, offsets = torch.broadcast_tensors(az, el, offsets)
        except RuntimeError:
            raise ValueError(
                "azimuth, elevation and dt must be numbers or sequences of one common length; "
                f"got lengths {len(az)}, {len(el)}, {len(offsets)}"
            ) from None
        poses = torch.stack([az, el], -1)  # (N, 2) degrees, relative or absolute
        if source_pose is None:
            origin = torch.zeros(2, device=self._device)  # the input camera is pose (0, 0)
        else:
            origin = torch.as_tensor(source_pose, dtype=torch.float32, device=self._device)
            if origin.shape != (2,):
                raise ValueError(
                    f"source_pose must be (azimuth, elevation), got shape {tuple(origin.shape)}"
                )
        with torch.inference_mode():
            chunk = self.chunk_size if chunk_size == 0 else chunk_size
            views = self.renderer.render_views(latent, origin, poses, offsets, chunk)
        return views.float().clamp(0, 1)

    def slot_views(self, latent: Tensor) -> Tensor:
        """One image's latent rendered at every integer dt = -max_offset..max_offset at the
        input view (``SceneRenderer.slot_views``).

        Args:
            latent: (1, K, C, D, H, W) or (K, C, D, H, W), from ``encode``.

        Returns:
            (K, 3, S, S) float32 images in [0, 1] on ``device``.
        """
        origin = torch.zeros(2, device=self._device)  # the input camera is pose (0, 0)
        with torch.inference_mode():
            return self.renderer.slot_views(self._single(latent), origin).float().clamp(0, 1)

    def render_path(
        self,
        latent: Tensor,
        path: CameraPath,
        source_pose: Sequence[float] | Tensor | None = None,
    ) -> Tensor:
        """Render one image's latent along a camera path (``temporal_nsr.camera_path``).

        Args:
            latent: (1, K, C, D, H, W) or (K, C, D, H, W), from ``encode``.
            path: one pose and dt per frame; an absolute path is rendered from its own
                ``source_pose``, else from this argument's.
            source_pose: the input view's absolute (azimuth, elevation), for an absolute path.

        Returns:
            (F, 3, S, S) float32 frames in [0, 1] on ``device``.

        Raises:
            CameraPathError: an absolute path without a source pose. ValueError: some
                |dt| > max_offset.
        """
        source = None
        if path.absolute:
            source = path.source_pose if path.source_pose is not None else source_pose
            if source is None:
                raise CameraPathError(
                    f"{path.name}: absolute poses need the input view's pose: add "
                    '"source_pose": [azimuth, elevation] to the path (or source_pose=)'
                )
        return self.render(latent, path.azimuth, path.elevation, path.dt, source_pose=source)

    @staticmethod
    def to_pil(images: Tensor, size: int | None = None) -> list[Image.Image]:
        """(N, 3, S, S) or (3, S, S) images in [0, 1] -> N PIL RGB images.

        Args:
            images: what ``render`` returns.
            size: side in pixels (nearest-neighbour enlargement for display); None: S.
        """
        images = images[None] if images.dim() == 3 else images
        pixels = (images.detach().float().clamp(0, 1) * 255).round().byte().cpu()
        out = [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in pixels]  # (S, S, 3) each
        if size:
            out = [p.resize((size, size), Image.Resampling.NEAREST) for p in out]
        return out

    @classmethod
    def save(
        cls, images: Tensor, path: str | Path, size: int | None = None, fps: float = 12
    ) -> list[Path]:
        """Write rendered images: one PNG (``x.png``, one image), numbered PNGs in a folder
        (``frames/``: 00000.png, ...), or an animation (``x.gif``, ``x.mp4``).

        Args:
            images: (N, 3, S, S) or (3, S, S) in [0, 1].
            path: a .png, .gif or .mp4 file, or a folder.
            size: side in pixels (nearest-neighbour enlargement); None: S.
            fps: frames per second of an animation.

        Returns:
            The files written.
        """
        from temporal_nsr.pictures import write_video

        path = Path(path)
        pictures = cls.to_pil(images, size)
        if path.suffix in (".gif", ".mp4"):
            frames = torch.stack([torch.from_numpy(np.array(p)) for p in pictures])  # (F, S, S, 3)
            return [write_video(path, frames.permute(0, 3, 1, 2).float() / 255, fps)]
        if path.suffix == ".png":
            if len(pictures) != 1:
                raise ValueError(f"{path}: one PNG takes one image, got {len(pictures)}")
            path.parent.mkdir(parents=True, exist_ok=True)
            pictures[0].save(path)
            return [path]
        path.mkdir(parents=True, exist_ok=True)
        for i, picture in enumerate(pictures):
            picture.save(path / f"{i:05d}.png")
        return [path / f"{i:05d}.png" for i in range(len(pictures))]


def load_renderer(cfg: DictConfig) -> NovelViewRenderer:
    """The model a command's config names, ready to render (its load logs one line: the file,
    its step, the device and the precision).

    Args:
        cfg: a node with exactly one of ``run_dir`` (+ ``checkpoint``: best, last or a path)
            and ``ckpt``, plus ``device`` and optionally ``precision`` (default fp32).

    Raises:
        CheckpointError: neither or both of run_dir and ckpt, a bad run folder or a
            bad file. ValueError: a precision the device cannot run.
    """
    device = resolve_device(cfg.device)
    precision = cfg.get("precision", "fp32")
    dtype = inference_dtype(precision, device)
    run = load_model(cfg.get("run_dir"), cfg.get("ckpt"), cfg.checkpoint, str(device), dtype)
    return NovelViewRenderer.from_loaded(run, device, precision=precision)
