"""Images the viewer offers below the upload box: bundled generated bars, the run's test split.

The bundled ``temporal_nsr/viewer_examples/*.png`` are views of the default bending bar made by
the project's own generator (128 px; other model sizes resize them, with a note), rewritten
byte for byte by ``write_examples()``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from temporal_nsr.atomic import atomic_file
from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.data.errors import DatasetError
from temporal_nsr.inference import NovelViewRenderer

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "viewer_examples"
# (file stem, (deformation family, time profile), timestep) of the bundled examples; the view of
# each is the generated one whose elevation is closest to EXAMPLE_ELEVATION_DEG.
EXAMPLES = (
    ("bar_sine_t00", ("bend", "sine"), 0),
    ("bar_sine_t05", ("bend", "sine"), 5),
    ("bar_sine_t10", ("bend", "sine"), 10),
    ("bar_sine_t16", ("bend", "sine"), 16),
    ("bar_linear_t12", ("bend", "linear"), 12),
    ("bar_twist_t10", ("bend_twist", "sine"), 10),
)
EXAMPLE_ELEVATION_DEG = 25.0
EXAMPLE_VIEWS = 8  # generated views per timestep to choose from


class Example(NamedTuple):
    """An image offered below the upload box."""

    path: Path
    label: str


def write_examples(out_dir: Path | str = EXAMPLES_DIR) -> list[Path]:
    """Generate the bundled example images with the project's generator (default settings).

    For each entry of ``EXAMPLES``, the default bending-bar dataset (``conf/data/bend.yaml``,
    128 px) is generated with ``EXAMPLE_VIEWS`` views per timestep into a temporary folder, and
    the view of that timestep whose elevation is closest to ``EXAMPLE_ELEVATION_DEG`` is copied.
    Deterministic: the same files byte for byte on every run.

    Returns:
        The files written, in ``EXAMPLES`` order.
    """
    from temporal_nsr.config import compose_config
    from temporal_nsr.data.synthetic.generator import generate_dataset

    cfg = compose_config([], config_name="generate")
    base = OmegaConf.to_container(cfg.data.generator, resolve=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets: dict[tuple[str, str], Path] = {}
        for stem, deformation, timestep in EXAMPLES:
            if deformation not in datasets:
                root = Path(tmp) / "_".join(deformation)
                chosen = dict(zip(("family", "profile"), deformation, strict=True))
                generate_dataset(
                    root,
                    {**base, "deformation": {**base["deformation"], **chosen},
                     "views_per_timestep": EXAMPLE_VIEWS},
                    progress=False,
                )  # fmt: skip
                datasets[deformation] = root
            candidates = [
                (abs(float(views.pose[i, 1]) - EXAMPLE_ELEVATION_DEG), views.files[i])
                for split in ("train", "val", "test")
                for views in [
                    RenderedViews(
                        datasets[deformation] / split, base["image_size"], cache_dir=Path(tmp) / "c"
                    )
                ]
                for i in np.flatnonzero(
                    (views.original_timestep == timestep) & (views.original_object_id == 0)
                )
            ]
            _, source = min(candidates)
            target = out_dir / f"{stem}.png"
            with atomic_file(target) as partial:
                shutil.copyfile(source, partial)
            written.append(target)
    return written


def find_examples(
    renderer: NovelViewRenderer, bundled: bool = True, test_split: int = 0
) -> list[Example]:
    """Images to offer: the bundled examples, then up to ``test_split`` test images of the run.

    Test images come from ``<data.root>/test`` of the run's config, one per (object, timestep)
    first, then further views; a missing or unreadable dataset is skipped with a log line.
    """
    examples = []
    if bundled:
        examples += [
            Example(path, f"generated: {path.stem}") for path in sorted(EXAMPLES_DIR.glob("*.png"))
        ]
    data = renderer.config.get("data") if renderer.config is not None else None
    if test_split <= 0 or data is None:  # an ENR file's model names no dataset
        return examples
    try:
        root = Path(data.root) / "test"
        views = RenderedViews(root, data.image_size, data.num_timesteps, data.get("static", False))
    except (DatasetError, OSError, ValueError, OmegaConfBaseException) as error:
        log.info("no test-split examples: %s", error)
        return examples
    objects, times = views.original_object_id, views.original_timestep
    # Rank of each record among the views of its (object, timestep): 0 for the first view.
    rank = np.zeros(len(views), dtype=np.int64)
    seen: dict[tuple[int, int], int] = {}
    for i, key in enumerate(zip(objects.tolist(), times.tolist(), strict=True)):
        rank[i] = seen.get(key, 0)
        seen[key] = rank[i] + 1
    order = np.lexsort((times, objects, rank))[:test_split]
    for i in order:
        obj = views.object_names[int(objects[i])]
        examples.append(
            Example(views.files[i], f"test: {obj} t={times[i]} ({views.files[i].stem})")
        )
    return examples
