"""The evaluation entry point on a tiny trained run: outputs, determinism, options."""

import csv
import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from temporal_nsr.config import compose_config
from temporal_nsr.data.synthetic.generator import generate_dataset
from temporal_nsr.evaluate import evaluate
from temporal_nsr.evaluation.folders import score_folders
from temporal_nsr.evaluation.metrics import PSNR_CAP_DB, per_image_scores
from temporal_nsr.evaluation.predictors import build_predictors
from temporal_nsr.evaluation.protocol import EvaluationError
from temporal_nsr.runs import CheckpointError
from tests.conftest import TINY_GENERATOR


def _eval_cfg(run_dir: Path, **extra):
    overrides = [f"run_dir={run_dir}", f"paths.output_dir={run_dir}/evaluate"]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return compose_config(overrides, config_name="evaluate")


def _pair_rows(out_dir: Path, split: str = "val") -> list[dict[str, str]]:
    with (out_dir / f"pairs_{split}.csv").open() as f:
        return list(csv.DictReader(f))


def test_evaluation_is_deterministic_and_complete(tiny_run: Path, tmp_path: Path) -> None:
    first = evaluate(_eval_cfg(tiny_run))  # default folder: <run_dir>/eval
    again = evaluate(_eval_cfg(tiny_run, out_dir=tmp_path))
    assert first["splits"] == again["splits"]  # bend and IoU included
    val = first["splits"]["val"]["by_setting"]
    # val holds one timestep, so "other held-out timestep" has no pairs; the others do.
    assert set(val) >= {"same_time", "train_time", "all_dt_nonzero"}
    assert val["same_time"]["ambiguity_floor"] == {"bend_error_deg": 0.0}  # its own bend
    for setting, cell in val.items():
        assert {"model", "static", "copy", "mean", "shuffled_source"} <= set(cell)
        assert cell["bend_pairs"] == cell["pairs"]  # the tiny splits are under bend_targets
        floor = cell["ambiguity_floor"]  # what no predictor can beat from one image
        assert set(floor) == {"bend_error_deg"} and floor["bend_error_deg"] >= 0.0
        for name, scores in cell.items():
            if isinstance(scores, dict) and name != "ambiguity_floor":
                # time changes pixels only where dt != 0: the moving region is empty at dt = 0
                moving = {"moving_psnr"} if setting != "same_time" else set()
                assert set(scores) == {"psnr", "ssim", "iou", "bend_error_deg", *moving}
    eval_dir = tiny_run / "eval"
    for name in ("results.json", "results.md", "pairs_val.csv", "pairs_test.csv"):
        assert (eval_dir / name).is_file()
        assert (eval_dir / name).read_bytes() == (tmp_path / name).read_bytes()
    saved = json.loads((eval_dir / "results.json").read_text())
    assert len(saved["checkpoint_sha256"]) == 64
    assert saved["data_manifest"]["complete"] is True
    estimator = saved["bend_estimator"]  # the family and the steps its parameters declare
    assert estimator["family"] == "bend" and estimator["steps"]["bend_deg"]["coarse"] == 5.0
    if importlib.util.find_spec("matplotlib") is not None:
        assert (eval_dir / "slots_bend.png").is_file()
    strip = saved["splits"]["val"]["slots_bend"]
    assert strip["dt"] == [-2, -1, 0, 1, 2] and len(strip["estimated_bend_deg"]) == 5
    assert strip["true_bend_deg"][-1] is None  # val is timestep 4 of 0..5: t = 6 does not exist
    table = (eval_dir / "results.md").read_text()
    assert (
        "| val | pairs | model | static |" in table
        and "| val: IoU / bend error (deg) | pairs |" in table
    )
    assert "| same_time | 8 (8) |" in table
    assert "| val: moving-region PSNR | pairs |" in table
    equivariance = saved["splits"]["val"]["equivariance"]
    overall = equivariance["by_abs_dt"]["all"]
    assert overall["pairs"] == sum(
        c["pairs"] for k, c in equivariance["by_abs_dt"].items() if k != "all"
    )
    assert overall["moved_distance"] > 0 and overall["static_distance"] > 0
    assert equivariance["composition"] is None  # slots do not compose
    assert "| val: equivariance | pairs |" in table


def test_every_predictor_is_scored_on_the_same_pairs(tiny_run: Path, tmp_path: Path) -> None:
    """Every predictor of conf/evaluate.yaml (the tiny data offer what each needs: two
    objects, a baseline, the generator), in its column order, with its own legend."""
    cfg = _eval_cfg(tiny_run, baseline_run_dir=tiny_run, out_dir=tmp_path)
    results = evaluate(cfg)
    names = [p.name for p in build_predictors(cfg.predictors)]
    assert {"model", "static", "copy", "mean", "shuffled_source", "other_object",
            "baseline"} <= set(names)  # fmt: skip
    pairs: dict[str, set] = {}
    for row in _pair_rows(tmp_path):
        key = (row["setting"], row["source"], row["source_pool"], row["target"], row["dt"])
        pairs.setdefault(row["predictor"], set()).add(key)
    assert list(pairs) == names
    assert all(p == pairs["model"] for p in pairs.values())
    assert list(results["predictors"]) == names
    cell = results["splits"]["val"]["by_setting"]["all_dt_nonzero"]
    assert [k for k in cell if k in names] == names
    note = (tmp_path / "results.md").read_text()
    for name, legend in results["predictors"].items():
        assert f"* `{name}`: {legend}" in note


def test_static_is_the_model_at_dt_zero(tiny_run: Path, tmp_path: Path) -> None:
    evaluate(_eval_cfg(tiny_run, out_dir=tmp_path))
    rows = _pair_rows(tmp_path)
    metrics = ("psnr", "ssim", "iou", "bend_error_deg")
    by_pair: dict[tuple, dict[str, tuple]] = {}
    for row in rows:
        key = (row["setting"], row["source"], row["source_pool"], row["target"])
        by_pair.setdefault(key, {})[row["predictor"]] = tuple(row[m] for m in metrics)
    dt = {(r["setting"], r["source"], r["source_pool"], r["target"]): r["dt"] for r in rows}
    assert any(d != "0" for d in dt.values())
    for key, scores in by_pair.items():
        if dt[key] == "0":
            assert scores["static"] == scores["model"]


def test_bend_targets_caps_the_pairs_with_a_bend_estimate(tiny_run: Path, tmp_path: Path) -> None:
    results = evaluate(_eval_cfg(tiny_run, out_dir=tmp_path, bend_targets=3))
    rows = _pair_rows(tmp_path)
    assert len({r["target"] for r in rows if r["bend_error_deg"]}) == 3
    assert all(r["iou"] for r in rows)  # IoU is scored on every pair
    cell = results["splits"]["val"]["by_setting"]["same_time"]
    assert 0 < cell["bend_pairs"] < cell["pairs"]
    none = evaluate(_eval_cfg(tiny_run, out_dir=tmp_path, bend_targets=0))
    cell = none["splits"]["val"]["by_setting"]["same_time"]
    assert "bend_pairs" not in cell and "bend_error_deg" not in cell["model"]
    with pytest.raises(ValueError, match="bend_targets=-1"):
        evaluate(_eval_cfg(tiny_run, bend_targets=-1))


def test_identical_images_have_capped_psnr() -> None:
    image = torch.rand(2, 3, 16, 16)
    psnr, ssim = per_image_scores(image, image)
    assert torch.allclose(psnr, torch.full((2,), PSNR_CAP_DB))
    assert torch.allclose(ssim, torch.ones(2), atol=1e-4)


def test_missing_run_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a training run folder"):
        evaluate(_eval_cfg(tmp_path / "nope"))


def test_enr_protocol_uses_one_fixed_source_per_object(tiny_run: Path, tmp_path: Path) -> None:
    results = evaluate(_eval_cfg(tiny_run, protocol="enr", out_dir=tmp_path))
    cell = results["splits"]["val"]["by_setting"]["enr_fixed_source"]
    assert cell["pairs"] == 2 * (4 - 1)  # 2 objects x (4 views - the source)
    sources = {row["source"] for row in _pair_rows(tmp_path)}
    assert len(sources) == 2


def test_saved_images_and_file_names_in_the_pairs_csv(tiny_run: Path, tmp_path: Path) -> None:
    """save_images=true: source, target and every prediction per pair, named in the CSV; the
    CSV names the source and target FILES; scoring the saved folders gives the same PSNR."""
    evaluate(_eval_cfg(tiny_run, out_dir=tmp_path, save_images=True, splits="[val]",
                       bend_targets=0))  # fmt: skip
    rows = _pair_rows(tmp_path)
    root = Path(OmegaConf.load(tiny_run / ".hydra" / "config.yaml").data.root)
    for row in rows:
        assert (root / row["source_file"]).is_file() and (root / row["target_file"]).is_file()
        assert row["target_file"].startswith("val/")
        for key in ("source_image", "target_image", "prediction_image"):
            assert (tmp_path / row[key]).is_file()
        assert row["prediction_image"].startswith(f"images/val/{row['predictor']}/")
        # a prediction and its target share their name: the folders score as they are
        assert Path(row["prediction_image"]).name == Path(row["target_image"]).name
    assert not list(tmp_path.glob("images/**/.*"))  # written atomically: no temporary left
    model = [r for r in rows if r["predictor"] == "model"]
    images = tmp_path / "images" / "val"
    assert len(list((images / "model").iterdir())) == len(model)
    scored, means = score_folders(images / "model", images / "target")
    assert means["pairs"] == len(model)
    # The PNGs are 8-bit: the same PSNR as the evaluation's up to quantisation.
    expected = sum(float(r["psnr"]) for r in model) / len(model)
    assert abs(means["psnr"] - expected) < 0.2
    (images / "target" / "00000.png").unlink()
    with pytest.raises(EvaluationError, match="00000.png has no target"):
        score_folders(images / "model", images / "target")


def test_progress_lines_per_split(tiny_run: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="temporal_nsr.evaluation.split"):
        evaluate(_eval_cfg(tiny_run, out_dir=tmp_path, splits="[val]", bend_targets=0))
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        re.match(r"evaluate val: \d+/\d+ pairs \(100%\), .* pairs/s, ETA 0 s", x) for x in lines
    )
    assert any(
        re.match(r"evaluate val: done in .* s; PSNR \(dt != 0\): model \d", x) for x in lines
    )


def test_a_dataset_across_families_is_reported_per_family(tiny_run: Path, tmp_path: Path) -> None:
    """On data whose objects follow different families, every pair is scored on its own
    family's parameter and results.json, results.md report each family, seen and unseen."""
    generator = {**TINY_GENERATOR, "num_objects": 4, "val_objects": [2, 3],
                 "deformation": {"family": ["bend", "stretch"], "profile": "sine"}}  # fmt: skip
    root = generate_dataset(tmp_path / "mix", generator, progress=False, workers=1)
    checkpoint = tiny_run / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        [f"ckpt={checkpoint}", "data=bend", f"data.root={root}", "data.generator=null",
         "data.image_size=32", "data.num_timesteps=6", "data.max_offset=2",
         f"out_dir={tmp_path}/eval", "splits=[val]", "equivariance_pairs=0"],
        config_name="evaluate",
    )  # fmt: skip
    results = evaluate(cfg)
    val = results["splits"]["val"]
    assert sorted(val["by_family"]) == ["bend", "stretch"]
    for name, error in (("bend", "bend_error_deg"), ("stretch", "stretch_error")):
        part = val["by_family"][name]
        assert sorted(part["by_objects"]) == ["seen", "unseen"]
        moved = part["by_setting"]["all_dt_nonzero"]
        assert error in moved["model"] and moved["bend_pairs"] > 0
        other = "stretch_error" if name == "bend" else "bend_error_deg"
        assert other not in moved["model"]
    rows = _pair_rows(tmp_path / "eval")
    assert {r["family"] for r in rows} == {"bend", "stretch"}
    for row in rows:  # a row holds its own family's columns only
        other = "stretch_error" if row["family"] == "bend" else "bend_error_deg"
        assert row[other] == ""
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "| val: family |" in table and "| stretch, unseen |" in table
