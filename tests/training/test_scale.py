"""Scaling out: Hydra sweeps (joblib, submitit, Optuna), CPU DDP, crash-safe checkpoints.

Most tests run `python -m temporal_nsr.train` as a subprocess, as a user would: Hydra's launchers
and Lightning's DDP launcher both need a real command line. ScaleProbe (below) is loaded into
those runs as an extra callback and writes what each rank saw to JSON.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from temporal_nsr.config import compose_config
from temporal_nsr.runs import CheckpointError, furthest_checkpoint
from temporal_nsr.training import checkpointing
from temporal_nsr.training.checkpointing import AtomicCheckpointIO, resolve_ckpt_path
from temporal_nsr.training.fit import train
from temporal_nsr.training.sweep import write_job_result, write_summary

REPO = Path(__file__).resolve().parents[2]
PROBE = f"{__name__}.ScaleProbe"


class ScaleProbe(L.Callback):
    """Records, per rank, the training pairs, checkpoint writes, start step and val metrics.

    Args:
        out_dir: where ``probe_<tag>_rank<r>.json`` is written at the end of fit.
        tag: names the run (a resumed run writes beside the first).
    """

    def __init__(self, out_dir: str, tag: str = "run") -> None:
        self.out_dir = Path(out_dir)
        self.tag = tag
        self.record: dict = {"pairs": [], "saves": [], "batches": 0}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def recording_save(checkpoint, path, storage_options=None):
            self.record["saves"].append(str(path))
            return save(checkpoint, path, storage_options)

        io.save_checkpoint = recording_save

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = trainer.optimizers[0].state.values()
        steps = [float(s["step"]) for s in state if "step" in s]
        self.record["start_step"] = trainer.global_step
        self.record["optimizer_step"] = max(steps, default=0.0)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler
        self.record["sampler"] = [sampler.rank, sampler.num_replicas]
        self.record["pairs"].append([list(pair) for pair in sampler])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record["batches"] += 1

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics.items()
        self.record.update(
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            end_step=trainer.global_step,
            val={k: float(v) for k, v in metrics if k.startswith("val/")},
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"probe_{self.tag}_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.record))


def _base(tiny_data: Path, root: Path) -> list[str]:
    return ["experiment=tiny", "logger=none", f"data.root={tiny_data}", f"paths.root_dir={root}"]


def _probe(out_dir: Path, tag: str = "run") -> list[str]:
    return [f"+callbacks.probe._target_={PROBE}", f"+callbacks.probe.out_dir={out_dir}",
            f"+callbacks.probe.tag={tag}"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "temporal_nsr.train", *args]


def _train(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the training entry point to completion; fail with its output if it fails."""
    done = subprocess.run(
        _command(args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def _sweep_dir(root: Path) -> Path:
    (sweep,) = (root / "outputs" / "train" / "multirun").iterdir()
    return sweep


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


def _wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 180) -> int:
    """Poll until the run's newest checkpoint holds `step` optimizer steps; return the step seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be interrupted"
        ckpt = furthest_checkpoint(run_dir)
        # Safe while training runs: checkpoints are replaced atomically, never written in place
        # (a superseded best checkpoint may vanish, though).
        with contextlib.suppress(FileNotFoundError):
            seen = _step(ckpt) if ckpt is not None else -1
            if seen >= step:
                return seen
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"no checkpoint of {run_dir} reached step {step}")


# -- sweeps ------------------------------------------------------------------------------------


def test_parallel_multirun_writes_each_run_and_a_summary(tiny_data: Path, tmp_path: Path) -> None:
    # data.num_workers=1: DataLoader workers in joblib's loky workers need training/fit.py's fix.
    _train(["-m", "hydra/launcher=local_parallel", *_base(tiny_data, tmp_path),
            "data.num_workers=1", "model.smoothness_weight=0,0.1"])  # fmt: skip
    sweep = _sweep_dir(tmp_path)
    jobs = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert jobs == ["0", "1"]
    for job in jobs:
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
    lines = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(lines) == 3  # header + one row per job
    table = (sweep / "sweep_summary.md").read_text()
    assert "`model.smoothness_weight=0`" in table and "`model.smoothness_weight=0.1`" in table
    result = json.loads((sweep / "1" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["best_val_psnr"] > 0
    assert result["wall_time_s"] > 0 and "model.smoothness_weight=0.1" in result["overrides"]


def test_optuna_search_stores_its_study_and_resumes_it(tiny_data: Path, tmp_path: Path) -> None:
    import optuna

    search = ["hparams_search=bend_optuna", *_base(tiny_data, tmp_path)]
    _train([*search, "hydra.sweeper.n_trials=1"])
    storage = f"sqlite:///{tmp_path}/outputs/optuna/bend.db"
    study = optuna.load_study(study_name="bend_optuna", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert study.best_value > 0
    searched = {"model.optimizer.lr", "model.smoothness_weight"}
    assert searched | {"model.renderer.encoder.latent_channels"} <= set(study.best_params)
    _train([*search, "hydra.sweeper.n_trials=1"])  # the same command again: one more trial
    study = optuna.load_study(study_name="bend_optuna", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


def test_submitit_local_job_runs_to_completion(tiny_data: Path, tmp_path: Path) -> None:
    _train(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
            *_base(tiny_data, tmp_path)])  # fmt: skip
    sweep = _sweep_dir(tmp_path)
    result = json.loads((sweep / "0" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["global_step"] > 0
    assert any((sweep / ".submitit").rglob("*_result.pkl"))
    assert (sweep / "sweep_summary.md").is_file()


def test_wandb_runs_of_a_sweep_share_a_group_and_resume(tmp_path: Path, monkeypatch) -> None:
    from temporal_nsr.training.fit import _instantiate_logger

    monkeypatch.setenv("WANDB_MODE", "disabled")
    sweep = tmp_path / "multirun" / "2026-01-01_00-00-00"
    cfg = compose_config(["experiment=tiny", "logger=wandb", "hydra.mode=MULTIRUN",
                          f"hydra.sweep.dir={sweep}", "hydra.job.num=1"])  # fmt: skip
    first = _instantiate_logger(cfg.logger.wandb, tmp_path / "job")
    again = _instantiate_logger(cfg.logger.wandb, tmp_path / "job")
    assert first._wandb_init["group"] == "tiny-2026-01-01_00-00-00"
    assert first._wandb_init["name"].endswith("-job1")
    assert first._wandb_init["id"] == (tmp_path / "job" / "wandb_run_id").read_text().strip()
    assert again._wandb_init["id"] == first._wandb_init["id"]
    assert first._wandb_init["resume"] == "allow"


# -- DDP ---------------------------------------------------------------------------------------


def test_cpu_ddp_shards_pairs_reduces_metrics_and_writes_once(
    tiny_data: Path, tmp_path: Path
) -> None:
    probes = tmp_path / "probes"
    _train([*_base(tiny_data, tmp_path), "trainer=ddp", "trainer.accelerator=cpu",
            "trainer.devices=2", *_probe(probes)])  # fmt: skip
    (run_dir,) = (tmp_path / "outputs" / "train").iterdir()  # rank 1 reused rank 0's folder
    assert (run_dir / "train_ddp_process_1.log").is_file()
    rank0, rank1 = (json.loads((probes / f"probe_run_rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["sampler"] == [0, 2] and rank1["sampler"] == [1, 2]
    for epoch0, epoch1 in zip(rank0["pairs"], rank1["pairs"], strict=True):
        assert len(epoch0) == len(epoch1) == 4  # tiny: 8 pairs per epoch over 2 ranks
        assert epoch0 != epoch1
    assert rank0["batches"] == rank1["batches"] == 4  # 2 epochs x 2 pairs per step
    # Validation pairs differ per rank too; the logged epoch values are all-reduced.
    assert rank0["val"] == rank1["val"] and "val/psnr" in rank0["val"]
    assert rank0["saves"] and not rank1["saves"]
    assert {Path(p).parent for p in rank0["saves"]} == {run_dir / "checkpoints"}
    assert json.loads((run_dir / "metrics.json").read_text())["world_size"] == 2


def test_ddp_under_multirun_is_refused_with_a_fix(tmp_path: Path) -> None:
    from temporal_nsr.training.fit import _refuse_ddp_relaunch_in_multirun

    compose_config(["experiment=tiny", "hydra.mode=MULTIRUN"])
    assert HydraConfig.get().mode.name == "MULTIRUN"
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False,
                        default_root_dir=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="ddp_spawn"):
        _refuse_ddp_relaunch_in_multirun(trainer)


# -- crash safety ------------------------------------------------------------------------------


def test_kill9_mid_epoch_then_resume_continues_at_the_saved_step(
    tiny_data: Path, tmp_path: Path
) -> None:
    run_dir, probes = tmp_path / "run", tmp_path / "probes"
    args = [*_base(tiny_data, tmp_path), f"hydra.run.dir={run_dir}", "test=false",
            "callbacks.periodic_checkpoint.every_n_train_steps=3"]  # fmt: skip
    proc = subprocess.Popen(
        _command([*args, "trainer.max_epochs=1000"]),
        cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_step(proc, run_dir, step=9)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = torch.load(furthest_checkpoint(run_dir), weights_only=False)
    step = saved["global_step"]
    _train([*args, "ckpt_path=last", f"trainer.max_epochs={saved['epoch'] + 2}",
            *_probe(probes, "resumed")])  # fmt: skip
    resumed = json.loads((probes / "probe_resumed_rank0.json").read_text())
    assert resumed["start_step"] == step
    assert resumed["optimizer_step"] == step  # Adam's state came back with the weights
    assert resumed["end_step"] == 4 * (saved["epoch"] + 2)  # 4 steps per epoch, none redone
    assert _step(run_dir / "checkpoints" / "last.ckpt") == resumed["end_step"]


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 0), (signal.SIGINT, 130)],  # SIGINT: Ctrl-C, the shell's status 130
    ids=["sigterm", "ctrl_c"],
)
def test_a_stop_signal_saves_last_checkpoint(
    tiny_data: Path, tmp_path: Path, signum: int, status: int
) -> None:
    run_dir = tmp_path / "run"
    args = [*_base(tiny_data, tmp_path), f"hydra.run.dir={run_dir}", "trainer.max_epochs=1000",
            "callbacks.periodic_checkpoint.every_n_train_steps=2"]  # fmt: skip
    proc = subprocess.Popen(
        _command(args), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        seen = _wait_for_step(proc, run_dir, step=5)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, stderr[-3000:]
    assert b"Traceback" not in stderr
    assert _step(run_dir / "checkpoints" / "last.ckpt") >= seen
    assert "SIGTERM: saved" in (run_dir / "train.log").read_text()  # Ctrl-C: the same save
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["status"] == "interrupted"
    assert result["global_step"] == _step(run_dir / "checkpoints" / "last.ckpt")


def test_temporaries_of_a_kill_while_saving_are_removed_at_the_next_start(
    cfg_train, tmp_path: Path
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = folder / f".last.ckpt.{dead.pid}.0a1b2c3d.tmp"
    stale.write_bytes(b"PK half a checkpoint")
    alive = folder / f".last.ckpt.{os.getpid()}.0a1b2c3d.tmp"  # a writer still running: kept
    alive.write_bytes(b"PK")
    cfg_train.trainer.max_steps = 1
    cfg_train.test = False
    train(cfg_train)
    assert not stale.exists() and alive.exists()


def test_atomic_checkpoint_io_keeps_the_previous_file_on_a_crash(
    tmp_path: Path, monkeypatch
) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    def dying_save(obj, file) -> None:
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(checkpointing.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["global_step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    io.save_checkpoint({"global_step": 3}, path)
    assert io.load_checkpoint(path)["global_step"] == 3


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_resolve_ckpt_path(tmp_path: Path) -> None:
    """`last` is the highest stored global step, whatever the files' modification times."""
    assert resolve_ckpt_path(None, tmp_path) is None
    assert resolve_ckpt_path("last", tmp_path) is None  # nothing yet: start fresh
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    states = {"last.ckpt": 400, "periodic.ckpt": 600, "epoch003-psnr20.00.ckpt": 400}
    for name, step in states.items():
        torch.save({"global_step": step, "epoch": step // 200}, folder / name)
    os.utime(folder / "periodic.ckpt", ns=(1, 1))  # as a copy may leave it: the oldest file
    assert resolve_ckpt_path("last", tmp_path) == str(folder / "periodic.ckpt")
    torch.save({"global_step": 600, "epoch": 3}, folder / "last.ckpt")
    assert resolve_ckpt_path("last", tmp_path) == str(folder / "last.ckpt")  # a tie: last.ckpt
    assert resolve_ckpt_path(str(tmp_path), tmp_path / "new") == str(folder / "last.ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_ckpt_path(str(tmp_path / "missing"), tmp_path)


def test_sweep_summary_lists_failed_and_finished_jobs(tmp_path: Path) -> None:
    common = ["experiment=tiny"]
    write_job_result(tmp_path / "0", {"overrides": [*common, "seed=1"], "status": "completed",
                                      "best_val_psnr": 20.5, "wall_time_s": 3.0})  # fmt: skip
    write_job_result(tmp_path / "1", {"overrides": [*common, "seed=2"], "status": "interrupted",
                                      "best_val_psnr": None, "wall_time_s": 1.0})  # fmt: skip
    _, md = write_summary(tmp_path)
    rows = md.read_text().splitlines()
    assert rows[2].startswith("| 0 | `seed=1` | 20.50 |")
    assert rows[3].startswith("| 1 | `seed=2` |  |") and rows[3].endswith("interrupted |")
    with (tmp_path / "sweep_summary.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["job"] for row in table] == ["0", "1"] and table[0]["best_val_psnr"] == "20.5"
    assert not [p.name for p in tmp_path.rglob(".*")]  # atomic writes leave no temp files
    assert write_summary(tmp_path / "empty") is None


def test_sweep_summary_reaches_wandb_as_a_table(tmp_path: Path, monkeypatch) -> None:
    from omegaconf import OmegaConf

    from temporal_nsr.training.sweep import SweepSummary
    from tests.wandb_records import offline_run

    monkeypatch.setenv("WANDB_MODE", "offline")  # the test target disables W&B
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = tmp_path / "2026-01-01_00-00-00"
    write_job_result(sweep / "0", {"overrides": ["seed=1"], "status": "completed",
                                   "best_val_psnr": 20.5, "wall_time_s": 3.0})  # fmt: skip
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}},
                               "logger": {"wandb": {"project": "p", "group": "g"}}})  # fmt: skip
    SweepSummary().on_multirun_end(config)
    logged = offline_run(sweep)
    assert logged["run"].job_type == "sweep_summary"
    assert logged["run"].run_group == "g-2026-01-01_00-00-00"  # the jobs' group
    assert "sweep_summary" in logged["history"]


def test_resume_from_a_file_that_runs_code_is_one_line(
    tiny_data: Path, tiny_run: Path, tmp_path: Path
) -> None:
    from tests.test_inference import malicious_checkpoint

    marker = tmp_path / "marker"
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    bad = malicious_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", marker, state)
    with pytest.raises(CheckpointError, match="could run code"):
        AtomicCheckpointIO().load_checkpoint(bad)  # what Lightning's resume calls
    done = subprocess.run(
        _command([*_base(tiny_data, tmp_path), f"hydra.run.dir={tmp_path / 'run'}",
                  "ckpt_path=last"]),
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train: {bad} holds Python objects") and "could run code" in last
    assert not marker.exists()
