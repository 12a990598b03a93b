"""Original-implementation entries (`--original PATH`): the temporal ENR fork, timed as ours is.

PATH is a checkout of the fork; it is put on `sys.path` in the entry's child process and its
`models.neural_renderer.NeuralRenderer` is built with the fork's own 128 px configuration
(C = 3 per slot, 20 slots). Nothing of it is copied here.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from temporal_nsr.benchmarks.harness import milliseconds, peak_rss_mb, time_steps
from temporal_nsr.timing import summarise, timed_rounds

# The fork's config.json, less the image size: 2D ResNet, inverse projection to 3D, 3D ResNet
# to 20 slots of 3 channels; the renderer is built as the transpose of these.
ARCHITECTURE: dict[str, Any] = {
    "channels_2d": [64, 64, 128, 128, 128, 128, 256, 256, 128, 128, 128],
    "strides_2d": [1, 1, 2, 1, 2, 1, 2, 1, -2, 1, 1],
    "channels_3d": [32, 32, 128, 128, 128, 3, 3, 3],
    "strides_3d": [1, 1, 2, 1, 1, -2, 1, 1],
    "num_channels_inv_projection": [256, 512, 1024],
    "num_channels_projection": [512, 256, 256],
    "temporal_channels": 20,
    "mode": "bilinear",
}
SLOTS = ARCHITECTURE["temporal_channels"]
LEARNING_RATE = 2e-4  # the fork's config.json, as ours (conf/model/enr.yaml)


def check_checkout(path: Path) -> None:
    """Raise a one-line error unless ``path`` holds the fork's models/neural_renderer.py."""
    if not (path / "models" / "neural_renderer.py").is_file():
        raise FileNotFoundError(
            f"--original {path}: no models/neural_renderer.py there; "
            "pass a checkout of the original temporal ENR fork"
        )


def original_network(path: Path, image_size: int) -> torch.nn.Module:
    """The fork's NeuralRenderer for ``image_size`` px images, seeded, from the checkout."""
    check_checkout(path)
    sys.path.insert(0, str(path))  # the fork imports its modules as top-level `models`, `misc`
    from models.neural_renderer import NeuralRenderer

    torch.manual_seed(0)
    return NeuralRenderer(img_shape=(3, image_size, image_size), **ARCHITECTURE)


# The inference latencies every comparison reports, in this order.
PARTS = ("encode_one_image", "novel_view_from_cached_latent", "image_to_novel_view")


def original_calls(net: torch.nn.Module, image: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The fork's encode, novel view from a cached scene and image to novel view of ``image``,
    each without gradients, by ``PARTS`` name."""
    # The scene is resampled on the rotated grid whatever the pose: the identity stands for one.
    rotation = torch.eye(3)[None]
    slot = SLOTS // 2 + 1  # dt = 1 as in ours: the fork reads slot dt + slots / 2

    @torch.no_grad()
    def encode() -> torch.Tensor:
        scenes = net.inverse_render(image)
        # (1, slots * C, D, H, W) -> (1, slots, C, D, H, W) -> (1, C, D, H, W): one slot
        scenes = scenes.reshape(1, SLOTS, -1, *scenes.shape[2:])[:, slot]
        return net.spherical_mask(scenes)

    @torch.no_grad()
    def view(scene: torch.Tensor) -> torch.Tensor:
        return net.render(net.rotate(scene, rotation))

    scene = encode()
    return dict(zip(PARTS, (encode, lambda: view(scene), lambda: view(encode())), strict=True))


def bench_original_inference(quick: bool, path: Path, image_size: int) -> dict[str, Any]:
    """The fork's encode, novel view from a cached scene and image to novel view (eval, fp32)."""
    net = original_network(path, image_size).eval()
    calls = original_calls(net, torch.rand(1, 3, image_size, image_size))
    repeats = 3 if quick else 10
    ms = {part: milliseconds(calls[part], repeats) for part in PARTS}
    return {
        **summarise(ms["novel_view_from_cached_latent"], "ms"),
        "checkout": str(path),
        "image_size": image_size,
        **{part: summarise(ms[part], "ms") for part in PARTS},
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_beside_ours(quick: bool, path: Path, experiment: str) -> dict[str, Any]:
    """The fork's inference and ours (``NovelViewRenderer``, fp32 and, where native, bf16) of
    one image, timed in interleaved rounds in ONE process: each round runs every call once, so
    a neighbour's load slows all alike and the ratios hold on a shared machine, where entries
    timed in separate processes minutes apart do not.

    Returns:
        ``original``, ``fp32`` (and ``bf16``): ``PARTS`` -> a summary in ms; ``speedup``:
        precision -> part -> the original's median / ours; ``threads``, ``rounds``.
    """
    from hydra.utils import instantiate

    from temporal_nsr.acceleration import bf16_native
    from temporal_nsr.benchmarks.harness import compose
    from temporal_nsr.inference import NovelViewRenderer

    cfg = compose(experiment)
    size = int(cfg.data.image_size)
    image = torch.rand(1, 3, size, size)
    calls = {("original", part): fn for part, fn in original_calls(
        original_network(path, size).eval(), image).items()}  # fmt: skip
    precisions = ["fp32", "bf16"] if bf16_native(torch.device("cpu")) else ["fp32"]
    for precision in precisions:
        torch.manual_seed(0)
        ours = NovelViewRenderer(instantiate(cfg.model).renderer, "cpu", precision=precision)
        latent = ours.encode(image)
        dt = min(1, ours.max_offset)  # as inference_* times it
        parts = (
            lambda r=ours: r.encode(image),
            lambda r=ours, z=latent, t=dt: r.render(z, 30.0, 10.0, t),
            lambda r=ours, t=dt: r.render(r.encode(image), 30.0, 10.0, t),
        )
        calls.update({(precision, part): fn for part, fn in zip(PARTS, parts, strict=True)})
    samples = timed_rounds(calls, 2 if quick else 8)
    out: dict[str, Any] = {name: {} for name in ("original", *precisions)}
    for (name, part), seconds in samples.items():
        out[name][part] = summarise([1000 * t for t in seconds], "ms")
    speedup = {
        p: {part: out["original"][part]["median"] / out[p][part]["median"] for part in PARTS}
        for p in precisions
    }
    view = out["fp32"]["novel_view_from_cached_latent"]
    return {
        **{k: view[k] for k in ("unit", "median", "min", "max", "repeats")},
        "experiment": experiment,
        "checkout": str(path),
        "threads": torch.get_num_threads(),
        **out,
        "speedup": speedup,
    }


def bench_original_train_step(
    quick: bool, path: Path, image_size: int, images: int
) -> dict[str, Any]:
    """One Adam step of the fork's own forward on random image pairs, L1 on the renders (fp32)."""
    net = original_network(path, image_size).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    g = torch.Generator().manual_seed(0)
    # Images 2i and 2i + 1 are a pair. The fork reads slot t' - t + slots / 2 unchecked, so
    # times below slots / 2 keep every pair's slot in range.
    batch = {
        "img": torch.rand(images, 3, image_size, image_size, generator=g),
        "render_params": {
            "azimuth": torch.rand(images, generator=g) * 180,
            "elevation": torch.rand(images, generator=g) * 90,
            "temporal": torch.randint(0, SLOTS // 2, (images,), generator=g).float(),
        },
    }

    def step() -> None:
        imgs, rendered, _, _ = net(batch)  # rendered[i]: image i from its pair's other image
        loss = (rendered - imgs).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    samples, faults = time_steps(step, quick)
    return summarise(
        samples,
        "s/step",
        checkout=str(path),
        image_size=image_size,
        images=images,
        images_per_s=images / statistics.median(samples),
        peak_rss_mb=peak_rss_mb(),
        page_faults_per_step=faults,
    )
