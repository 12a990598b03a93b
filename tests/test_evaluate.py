"""The evaluation protocol on a tiny trained run."""

import json
from pathlib import Path

import pytest
import torch

from temporal_nsr.config import compose_config
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.evaluate import PSNR_CAP_DB, evaluate, per_image_scores


def _eval_cfg(run_dir: Path, **extra):
    overrides = [f"run_dir={run_dir}", f"paths.output_dir={run_dir}/evaluate"]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return compose_config(overrides, config_name="evaluate")


def test_evaluation_is_deterministic_and_complete(tiny_run: Path) -> None:
    first = evaluate(_eval_cfg(tiny_run))
    again = evaluate(_eval_cfg(tiny_run))
    assert first["splits"] == again["splits"]
    val = first["splits"]["val"]["by_setting"]
    # val holds one timestep, so "other held-out timestep" has no pairs; the others do.
    assert set(val) >= {"same_time", "train_time", "all_dt_nonzero"}
    for cell in val.values():
        assert {"model", "copy", "mean", "shuffled_source"} <= set(cell)
    eval_dir = tiny_run / "eval"
    for name in ("results.json", "results.md", "pairs_val.csv", "pairs_test.csv"):
        assert (eval_dir / name).is_file()
    saved = json.loads((eval_dir / "results.json").read_text())
    assert len(saved["checkpoint_sha256"]) == 64
    assert saved["data_manifest"]["complete"] is True


def test_every_predictor_is_scored_on_the_same_pairs(tiny_run: Path) -> None:
    evaluate(_eval_cfg(tiny_run, baseline_run_dir=tiny_run))
    rows = (tiny_run / "eval" / "pairs_val.csv").read_text().splitlines()[1:]
    pairs: dict[str, set] = {}
    for row in rows:
        _, setting, source, pool, target, dt, predictor, *_ = row.split(",")
        pairs.setdefault(predictor, set()).add((setting, source, pool, target, dt))
    assert set(pairs) == {"model", "copy", "mean", "shuffled_source", "other_object", "baseline"}
    assert all(p == pairs["model"] for p in pairs.values())


def test_identical_images_have_capped_psnr() -> None:
    image = torch.rand(2, 3, 16, 16)
    psnr, ssim = per_image_scores(image, image)
    assert torch.allclose(psnr, torch.full((2,), PSNR_CAP_DB))
    assert torch.allclose(ssim, torch.ones(2), atol=1e-4)


def test_missing_run_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a training run folder"):
        evaluate(_eval_cfg(tmp_path / "nope"))


def test_enr_protocol_uses_one_fixed_source_per_object(tiny_run: Path) -> None:
    results = evaluate(_eval_cfg(tiny_run, protocol="enr"))
    cell = results["splits"]["val"]["by_setting"]["enr_fixed_source"]
    assert cell["pairs"] == 2 * (4 - 1)  # 2 objects x (4 views - the source)
    rows = (tiny_run / "eval" / "pairs_val.csv").read_text().splitlines()[1:]
    sources = {row.split(",")[2] for row in rows}
    assert len(sources) == 2
