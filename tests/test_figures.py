"""Figures of a latent: colours of the latent slices, every figure of a rotation-only model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from temporal_nsr.config import compose_config
from temporal_nsr.figures import latent_to_rgb, render_figures
from temporal_nsr.inference import NovelViewRenderer


@pytest.mark.parametrize("channels", [1, 2, 3, 8])
def test_latent_colours_share_one_scale(channels: int) -> None:
    latent = torch.randn(5, channels, 4, 4, 4)
    rgb = latent_to_rgb(latent)
    assert rgb.shape == (5, 3, 4, 4, 4)
    assert rgb.min() == 0 and rgb.max() == 1  # one min/max over every slot
    if channels == 3:
        scale = (latent.max() - latent.min()).item()
        assert torch.allclose(rgb, (latent - latent.min()) / scale, atol=1e-6)


def test_rotation_only_model_gets_every_figure(tiny_data: Path) -> None:
    """max_offset = 0 (ENR): one slot, no interpolation, a plain turntable as the animation."""
    cfg = compose_config(["experiment=tiny", "logger=none", f"data.root={tiny_data}",
                          "data.max_offset=0"])  # fmt: skip
    renderer = NovelViewRenderer(instantiate(cfg.model).renderer, device="cpu")
    figures = render_figures(renderer, torch.rand(3, 32, 32), turntable_views=4)
    lengths = {name: None if f.frames is None else len(f.frames) for name, f in figures.items()}
    assert lengths == {"slots": None, "interpolation": 1, "latent_slices": 1, "turntable": 4,
                       "novel_animation": 4}  # fmt: skip


def test_shared_helpers_sit_below_their_users() -> None:
    # Training, evaluation and data draw, hash and compare silhouettes with these: none may pull
    # in the inference API, the model or Lightning.
    import subprocess
    import sys

    code = (
        "import sys, temporal_nsr.pictures, temporal_nsr.digest, temporal_nsr.machine, "
        "temporal_nsr.silhouettes\n"
        "heavy = ('temporal_nsr.inference', 'temporal_nsr.model', 'temporal_nsr.figures', "
        "'lightning')\n"
        "print([m for m in sys.modules if m.startswith(heavy)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_image_grid_tiles_rows_on_white() -> None:
    import torch

    from temporal_nsr.pictures import image_grid, to_uint8

    black = torch.zeros(2, 3, 4, 4)
    grid = image_grid([black, black], pad=1)  # 2 rows of 2 tiles
    assert grid.shape == (3, 2 * 5 + 1, 2 * 5 + 1)
    assert grid.sum() == 3 * (11 * 11 - 4 * 16)  # white everywhere but the four tiles
    pixels = to_uint8(grid)
    assert pixels.shape == (11, 11, 3) and pixels.dtype.name == "uint8"
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[1, 1].tolist() == [0, 0, 0]
