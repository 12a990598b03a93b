"""The exported graphs: three modules around ``SceneRenderer``, their ports and example inputs."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from temporal_nsr.errors import UserError
from temporal_nsr.model.renderer import SceneRenderer

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 20  # the first opset whose GridSample takes 5D input (trilinear resampling)
SIDECAR = "export.json"
BATCH = "batch"  # name of the dynamic batch dimension in the graphs and the sidecar


class ExportError(UserError):
    """An export that cannot be made or checked; the message names the setting and the fix."""


class Port(NamedTuple):
    """One named input or output of a graph."""

    name: str
    shape: tuple[str | int, ...]  # BATCH for the dynamic batch dimension
    meaning: str


class GraphSpec(NamedTuple):
    """A module to export, its ports, and example inputs with batch 2 (batch 1 would be
    specialised as a constant by the exporter)."""

    module: nn.Module
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    example: tuple[Tensor, ...]


class EncoderGraph(nn.Module):
    """image (B, 3, S, S) in [0, 1] -> latent (B, K, C, D, H, W)."""

    def __init__(self, renderer: SceneRenderer) -> None:
        super().__init__()
        self.renderer = renderer

    def forward(self, image: Tensor) -> Tensor:
        return self.renderer.encode(image)


class SlotGraph(nn.Module):
    """latent (B, K, C, D, H, W), dt (B,) float time steps -> scene (B, C, D, H, W).

    ``SceneRenderer``'s slot selection without its range check, which a graph cannot raise.
    """

    def __init__(self, renderer: SceneRenderer) -> None:
        super().__init__()
        self.renderer = renderer

    def forward(self, latent: Tensor, dt: Tensor) -> Tensor:
        return self.renderer.select_slot(latent, dt, check=False)


class RendererGraph(nn.Module):
    """scene (B, C, D, H, W), source and target pose (B, 2) in degrees -> image (B, 3, S, S)."""

    def __init__(self, renderer: SceneRenderer) -> None:
        super().__init__()
        self.renderer = renderer

    def forward(self, scene: Tensor, source_pose: Tensor, target_pose: Tensor) -> Tensor:
        return self.renderer.render(scene, source_pose, target_pose)


def random_inputs(renderer: SceneRenderer, batch: int, seed: int) -> dict[str, Tensor]:
    """Inputs of every graph: random images, their latent, offsets incl. both ends, poses."""
    generator = torch.Generator().manual_seed(seed)
    size, m = renderer.encoder.image_size, renderer.max_offset

    def poses() -> Tensor:  # (B, 2) azimuth in [0, 360), elevation in [-90, 90]
        unit = torch.rand(batch, 2, generator=generator)
        return unit * torch.tensor([360.0, 180.0]) - torch.tensor([0.0, 90.0])

    image = torch.rand(batch, 3, size, size, generator=generator)
    with torch.no_grad():
        latent = renderer.encode(image)
    # -m and +m (exact end slots) first and last, fractional offsets between; 0 when m = 0.
    dt = torch.linspace(-m, m, batch)
    dt[1:-1] += 0.5 * min(m, 1) * torch.rand(max(batch - 2, 0), generator=generator)
    return {
        "image": image,
        "latent": latent,
        "dt": dt,
        "scene": latent[:, m].clone(),  # (B, K, C, D, H, W) -> (B, C, D, H, W): slot dt = 0
        "source_pose": poses(),
        "target_pose": poses(),
    }


def graph_specs(renderer: SceneRenderer) -> dict[str, GraphSpec]:
    """The three exported graphs of a renderer, with their ports and example inputs."""
    size = renderer.encoder.image_size
    k, (c, d, h, w) = renderer.encoder.num_slots, renderer.encoder.scene_shape
    latent: tuple[str | int, ...] = (BATCH, k, c, d, h, w)
    scene: tuple[str | int, ...] = (BATCH, c, d, h, w)
    image: tuple[str | int, ...] = (BATCH, 3, size, size)
    pose = (BATCH, 2)
    x = random_inputs(renderer, 2, seed=0)
    return {
        "encoder": GraphSpec(
            EncoderGraph(renderer).eval(),
            (Port("image", image, "RGB in [0, 1]"),),
            (Port("latent", latent, "slot k: the scene dt = k - max_offset steps later"),),
            (x["image"],),
        ),
        "slot": GraphSpec(
            SlotGraph(renderer).eval(),
            (
                Port("latent", latent, "output of encoder"),
                Port("dt", (BATCH,), "time offset in steps, |dt| <= max_offset (unchecked)"),
            ),
            (Port("scene", scene, "slot dt + max_offset, linear between slots"),),
            (x["latent"], x["dt"]),
        ),
        "renderer": GraphSpec(
            RendererGraph(renderer).eval(),
            (
                Port("scene", scene, "a latent slot, as seen from source_pose"),
                Port("source_pose", pose, "azimuth, elevation in degrees of the input view"),
                Port("target_pose", pose, "azimuth, elevation in degrees to render at"),
            ),
            (Port("image", image, "RGB in [0, 1]"),),
            (x["scene"], x["source_pose"], x["target_pose"]),
        ),
    }
