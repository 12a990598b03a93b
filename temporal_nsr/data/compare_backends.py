"""Checks that the Embree and Blender backends generate the same scene: silhouette IoU per view.

Generates one dataset config twice, with ``backend=embree`` and ``backend=blender`` (same seed,
so the same objects, timesteps and camera poses), and compares every pair of images: the
intersection over union of their silhouettes (pixels that differ from the background colour)
and the mean absolute colour difference where both show the object. Writes a side-by-side
figure and a JSON report::

    python -m temporal_nsr.data.compare_backends [--out docs/blender_vs_embree.png] \\
        [backend.executable=/path/to/blender] [data.generator.views_per_timestep=4 ...]

Positional arguments are overrides of ``conf/generate.yaml`` (``backend=blender`` is implied).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from temporal_nsr.atomic import atomic_file, write_text
from temporal_nsr.data.folders import dataset_folder
from temporal_nsr.data.format import PARAMS_FILE
from temporal_nsr.data.synthetic.blender import BlenderBackend
from temporal_nsr.data.synthetic.config import EmbreeSettings, resolve_config
from temporal_nsr.data.synthetic.generator import generate_dataset
from temporal_nsr.data.synthetic.writer import read_manifest
from temporal_nsr.silhouettes import UINT8_LEVEL, foreground, silhouette_iou, uint8_images

# The CLI's default comparison: 3 objects x 20 timesteps x 8 views at 128 px (480 image pairs).
DEFAULT_OVERRIDES = ["data.generator.views_per_timestep=8", "data.generator.num_objects=3"]


def _masks(pixels: np.ndarray, background: Sequence[float]) -> np.ndarray:
    """(N, S, S) bool silhouettes of (N, S, S, 3) uint8 images: pixels off the background."""
    return foreground(uint8_images(pixels), background, UINT8_LEVEL).numpy()


@dataclass
class Comparison:
    """What `compare_backends` measured.

    Attributes:
        records: one dict per view: split, object, stem, azimuth, elevation, temporal, iou,
            colour_diff (mean absolute difference in 0..255 levels where both silhouettes hold).
        background: the generator's background colour.
        embree_root: the Embree dataset folder.
        blender_root: the Blender dataset folder.
        embree_seconds: wall time of generating the Embree dataset.
        blender_seconds: wall time of generating the Blender dataset.
        blender_timings: per Blender process: views, wall, setup and views seconds.
        generated_by: the two manifests' ``generated_by`` entries.
    """

    records: list[dict[str, Any]]
    background: list[float]
    embree_root: Path
    blender_root: Path
    embree_seconds: float
    blender_seconds: float
    blender_timings: list[dict[str, float]] = field(default_factory=list)
    generated_by: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Min / mean / max IoU, mean colour difference and the time per image of each backend."""
        iou = np.array([r["iou"] for r in self.records])
        diff = np.array([r["colour_diff"] for r in self.records])
        views = sum(t["views"] for t in self.blender_timings)
        return {
            "images": len(self.records),
            "iou_min": float(iou.min()),
            "iou_mean": float(iou.mean()),
            "iou_max": float(iou.max()),
            "colour_diff_mean": float(np.nanmean(diff)),
            "embree_ms_per_image": 1000.0 * self.embree_seconds / len(self.records),
            "blender_ms_per_image": 1000.0 * self.blender_seconds / len(self.records),
            "blender_ms_per_view_in_process": (
                1000.0 * sum(t["views_seconds"] for t in self.blender_timings) / max(views, 1)
            ),
            "blender_seconds_per_process_outside_views": float(
                np.mean([t["wall_seconds"] - t["views_seconds"] for t in self.blender_timings])
            ),
            "generated_by": self.generated_by,
        }


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def compare_backends(
    generator: Mapping[str, Any], workdir: Path, name: str, *, progress: bool = False
) -> Comparison:
    """Generate ``generator`` with both backends under ``workdir`` and compare every view.

    Args:
        generator: a ``data.generator`` mapping whose ``backend`` is Blender's settings.
        workdir: receives the two dataset folders, each named from its config
            (`temporal_nsr.data.folders.dataset_folder`), so that a kept ``data/`` serves
            training with either backend.
        name: ``data.name``, the folders' readable prefix.
        progress: show the generators' progress bars.

    Returns:
        The per-view `Comparison`.

    Raises:
        ValueError: ``generator`` does not select the Blender backend, or the two datasets do
            not hold the same files and labels.
    """
    cfg = resolve_config(generator)
    if cfg.backend.name != "blender":
        raise ValueError("compare_backends needs the Blender backend: pass backend=blender.")
    workdir = Path(workdir)
    embree = replace(cfg, backend=EmbreeSettings(name="embree"))
    embree_root = dataset_folder(workdir, name, embree)
    blender_root = dataset_folder(workdir, name, cfg)
    start = time.perf_counter()
    generate_dataset(embree_root, embree, progress=progress)
    embree_seconds = time.perf_counter() - start
    blender = BlenderBackend(cfg.backend)
    start = time.perf_counter()
    generate_dataset(blender_root, cfg, progress=progress, backend=blender)
    blender_seconds = time.perf_counter() - start

    records = []
    for params_file in sorted(embree_root.glob(f"*/*/{PARAMS_FILE}")):
        folder = params_file.parent.relative_to(embree_root)
        params = json.loads(params_file.read_text())
        other = blender_root / folder / PARAMS_FILE
        if not other.is_file() or json.loads(other.read_text()) != params:
            raise ValueError(f"{other} differs from {params_file}: the backends disagree on labels")
        for stem, label in params.items():
            a = _load(embree_root / folder / f"{stem}.png")[None]
            b = _load(blender_root / folder / f"{stem}.png")[None]
            both = _masks(a, cfg.background)[0] & _masks(b, cfg.background)[0]
            diff = np.abs(a[0].astype(np.int16) - b[0].astype(np.int16))[both]
            records.append(
                {
                    "split": folder.parts[0],
                    "object": folder.parts[1],
                    "stem": stem,
                    **label,
                    "iou": float(
                        silhouette_iou(
                            uint8_images(a), uint8_images(b), cfg.background, UINT8_LEVEL
                        )[0]
                    ),
                    "colour_diff": float(diff.mean()) if diff.size else float("nan"),
                }
            )
    return Comparison(
        records=records,
        background=list(cfg.background),
        embree_root=embree_root,
        blender_root=blender_root,
        embree_seconds=embree_seconds,
        blender_seconds=blender_seconds,
        blender_timings=blender.timings,
        generated_by={
            name: (read_manifest(root) or {}).get("generated_by", "?")
            for name, root in (("embree", embree_root), ("blender", blender_root))
        },
    )


def comparison_figure(comparison: Comparison, path: Path, examples: int = 8) -> Path:
    """Side-by-side figure: Embree row, Blender row, silhouette difference row.

    Columns are ``examples - 1`` views spread evenly over the records, then the view of lowest
    IoU. In the difference row, grey pixels are in both silhouettes, red in Embree's only and
    blue in Blender's only; each column is titled with its object, timestep and IoU.
    """
    ious = [r["iou"] for r in comparison.records]
    spread = np.linspace(0, len(ious) - 1, max(examples - 1, 1)).round().astype(int)
    picks = list(dict.fromkeys([*spread.tolist(), int(np.argmin(ious))]))
    rows: list[list[np.ndarray]] = [[], [], []]
    titles = []
    for i in picks:
        r = comparison.records[int(i)]
        rel = Path(r["split"]) / r["object"] / f"{r['stem']}.png"
        a, b = _load(comparison.embree_root / rel), _load(comparison.blender_root / rel)
        ma = _masks(a[None], comparison.background)[0]
        mb = _masks(b[None], comparison.background)[0]
        diff = np.full_like(a, 255)
        diff[ma & mb] = 200  # grey: both
        diff[ma & ~mb] = (220, 0, 0)
        diff[mb & ~ma] = (0, 0, 220)
        for row, image in zip(rows, (a, b, diff), strict=True):
            row.append(image)
        titles.append(f"{r['object']} t={r['temporal']}: {r['iou']:.3f}")
    size, pad, head, foot, left = a.shape[0], 6, 14, 16, 64
    width = left + len(picks) * (size + pad)
    canvas = Image.new("RGB", (width, head + 3 * (size + pad) + foot), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((left + c * (size + pad), 2), title, fill="black")
    draw.text(
        (4, head + 3 * (size + pad)),
        "titles: object, timestep, silhouette IoU; last column: lowest IoU. diff: grey both, "
        "red Embree only, blue Blender only",
        fill="black",
    )
    for r, (name, row) in enumerate(zip(("Embree", "Blender", "diff"), rows, strict=True)):
        y = head + r * (size + pad)
        draw.text((4, y + size // 2 - 5), name, fill="black")
        for c, image in enumerate(row):
            canvas.paste(Image.fromarray(image), (left + c * (size + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI: compare the backends on a config of conf/generate.yaml; write figure and report."""
    from temporal_nsr.config import compose_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="overrides of conf/generate.yaml")
    parser.add_argument("--out", default="docs/blender_vs_embree.png", help="figure path")
    parser.add_argument("--report", default=None, help="JSON report (default: --out as .json)")
    parser.add_argument("--examples", type=int, default=8, help="views in the figure")
    parser.add_argument("--keep", default=None, help="keep both datasets in this folder")
    args = parser.parse_args(argv)
    overrides = ["backend=blender", *DEFAULT_OVERRIDES, *args.overrides]
    cfg = compose_config([*overrides, "hydra.run.dir=."], config_name="generate")
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    with tempfile.TemporaryDirectory(prefix="temporal_nsr-compare-") as scratch:
        workdir = Path(args.keep) if args.keep else Path(scratch)
        comparison = compare_backends(generator, workdir, cfg.data.name, progress=True)
        figure = comparison_figure(comparison, Path(args.out), args.examples)
    summary = comparison.summary()
    report = Path(args.report) if args.report else figure.with_suffix(".json")
    views = [
        json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
        for r in comparison.records
    ]
    rows = ",\n  ".join(views)  # one view per line
    text = (
        f'{{\n "overrides": {json.dumps(overrides)},\n "summary": {json.dumps(summary)},\n'
        f' "views": [\n  {rows}\n ]\n}}\n'
    )
    write_text(report, text)
    for key, value in summary.items():
        print(f"{key:42s} {value:.4g}" if isinstance(value, float) else f"{key:42s} {value}")
    print(f"figure: {figure}\nreport: {report}")
    return summary


if __name__ == "__main__":
    main()
