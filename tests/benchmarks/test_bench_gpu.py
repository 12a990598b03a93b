"""`bench --gpu`: the GPU step entries run, and fail, as the report says, rehearsed on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import temporal_nsr.benchmarks.training as training
from temporal_nsr import bench
from temporal_nsr.benchmarks import harness
from temporal_nsr.benchmarks.entries import GPU_PLAN, gpu_entries, gpu_plan
from temporal_nsr.benchmarks.gpu import Setting, bench_gpu_step, gpu_summary_lines
from temporal_nsr.benchmarks.harness import run_child

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rehearsal only")


def test_gpu_plan_measures_each_fast_path_against_eager_bf16() -> None:
    plan = gpu_plan(quick=False, cuda=True)
    assert plan[0] == ("bend_20t", 8, Setting())  # the baseline first: trainer=gpu today
    settings = {(e, b): [s for e2, b2, s in plan if (e2, b2) == (e, b)] for e, b, _ in plan}
    big = settings[("bend_20t", 8)]
    assert Setting(channels_last=True, cudnn_benchmark=True) in big
    assert any(s.compile_mode == "default" for s in big)
    small = settings[("bend_20t_cpu", 4)]  # 64 px: launch-bound, where CUDA graphs may pay
    assert Setting() in small and any(s.compile_mode == "reduce-overhead" for s in small)
    assert all(s.checkpointing for s in settings[("bend_20t", 128)])  # the batch checkpointing buys
    compiled = [i for i, (_, _, s) in enumerate(plan) if s.compile_mode]
    assert compiled == list(range(len(plan) - len(compiled), len(plan)))  # the slow ones last


def test_cpu_rehearsal_has_every_setting_a_cpu_has() -> None:
    plan = gpu_plan(quick=False, cuda=False)
    assert {e for e, _, _ in plan} == {"tiny"}
    assert not any(s.needs_cuda for _, _, s in plan)
    wanted = {s._replace(cudnn_benchmark=False) for _, _, s in GPU_PLAN if not s.compile_mode}
    assert wanted | {Setting(compile_mode="default")} == {s for _, _, s in plan}
    assert len(gpu_entries(quick=True)) == len(set(gpu_entries(quick=True)))


def test_a_step_reports_steps_per_second_memory_and_flops() -> None:
    result = bench_gpu_step(True, "tiny", 2, Setting(channels_last=True, checkpointing=True))
    assert result["fits"] and result["setting"] == "bf16_cl_ckpt" and "error" not in result
    assert result["steps_per_s"] == pytest.approx(1 / result["median"])
    assert result["pairs_per_s"] == pytest.approx(2 / result["median"])
    assert result["gflop_per_step"] > 0 and len(result["warmup_s"]) == 1
    memory = "peak_memory_gib" if torch.cuda.is_available() else "peak_rss_mb"
    assert result[memory] > 0


def test_out_of_memory_is_a_result_and_other_failures_an_error_line(monkeypatch) -> None:
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")

    monkeypatch.setattr(training, "train_step", no_memory)
    result = bench_gpu_step(True, "tiny", 64, Setting(checkpointing=True))
    assert result["fits"] is False and "error" not in result
    assert result["out_of_memory"] == "CUDA out of memory. Tried to allocate 2.00 GiB"

    def compile_error(*args, **kwargs):
        raise RuntimeError("backend='inductor' raised:\nthe whole trace")

    monkeypatch.setattr(training, "train_step", compile_error)
    result = bench_gpu_step(True, "tiny", 2, Setting(compile_mode="default"))
    assert result["error"] == "RuntimeError: backend='inductor' raised:"
    assert "error: RuntimeError" in gpu_summary_lines({"gpu_a": result})[1]


@no_cuda
def test_cuda_only_settings_are_an_error_line_on_a_cpu() -> None:
    result = bench_gpu_step(True, "tiny", 2, Setting(cudnn_benchmark=True))
    assert result["error"] == "bf16_cudnn needs CUDA"


def test_summary_compares_with_eager_bf16_of_the_same_batch() -> None:
    def step(setting: str, median: float, pairs: int = 8, **extra) -> dict:
        return {"setting": setting, "experiment": "bend_20t", "batch_pairs": pairs,
                "median": median, "steps_per_s": 1 / median, "pairs_per_s": pairs / median,
                "peak_memory_gib": 9.5, **extra}  # fmt: skip

    results = {
        "gpu_base": step("bf16", 0.08),
        "gpu_fast": step("bf16_cl_cudnn", 0.04),
        "gpu_big": {**step("bf16_cudnn_ckpt", 1.0, 128), "fits": False},
        "train_step_tiny_b4_bf16": {"median": 1.0},  # not a GPU entry
    }
    lines = gpu_summary_lines(results)
    assert len(lines) == 4 and lines[1].endswith("1.00x") and lines[2].endswith("2.00x")
    assert "9.5" in lines[2] and "does not fit" in lines[3]
    assert gpu_summary_lines({}) == []


def test_a_child_past_its_time_is_stopped_with_an_error_line() -> None:
    name = next(iter(gpu_entries(quick=True)))
    assert run_child(name, True, gpu=True, timeout_s=0.2) == {"error": "timed out after 0.2 s"}


def test_children_keep_the_packages_on_pythonpath(monkeypatch) -> None:
    seen = {}

    class Child:  # stands in for subprocess.Popen
        returncode = 0

        def __init__(self, cmd, **kwargs) -> None:
            seen.update(kwargs["env"])

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

        def communicate(self, timeout=None):
            return '{"median": 1.0}\n', ""

    monkeypatch.setenv("PYTHONPATH", "/tmp/site")  # wheels carried to a GPU machine
    monkeypatch.setattr(harness.subprocess, "Popen", Child)
    assert run_child("any", True, gpu=True) == {"median": 1.0}
    assert seen["PYTHONPATH"] == f"{harness.PROJECT_ROOT}{os.pathsep}/tmp/site"


def test_no_entry_starts_once_the_budget_is_spent(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench_gpu.json"
    with pytest.raises(SystemExit):  # entries that did not run are errors
        bench.main(["--gpu", "--quick", "--budget-s", "0", "--out", str(out)])
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(gpu_entries(quick=True))
    assert all(r["error"] == "not run: the budget of 0 s was spent" for r in results.values())
    assert "ERROR not run" in capsys.readouterr().out


@pytest.mark.slow
@no_cuda
def test_cpu_rehearsal_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench_gpu.json"
    cmd = [sys.executable, "-m", "temporal_nsr.bench", "--gpu", "--quick", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no CUDA: a CPU rehearsal" in done.stdout and "vs eager bf16" in done.stdout
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(gpu_entries(quick=True))
    compiled = results["gpu_train_step_tiny_b4_bf16_compile"]
    assert compiled["compile_backend"] == "aot_eager"
    assert compiled["compile_counters"]["graphs"] >= 1
    assert all(r["fits"] and r["median"] > 0 for r in results.values())
    assert out.with_suffix(".log").read_text().count("==> gpu_train_step_") == len(results)
