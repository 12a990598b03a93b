"""ThreadGovernor: the pool follows what other processes leave free, after two agreeing looks."""

from __future__ import annotations

import pytest
import torch

from temporal_nsr import threads
from temporal_nsr.training.callbacks import ThreadGovernor


class FakeTrainer:
    global_step = 7

    class strategy:  # noqa: N801 - mimics trainer.strategy.root_device
        root_device = torch.device("cpu")


def test_the_pool_changes_after_two_agreeing_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = iter(
        [threads.CpuLoad(2, 1.0, 1), threads.CpuLoad(2, 1.0, 1), threads.CpuLoad(2, 0.0, 2)]
    )
    monkeypatch.setattr(threads, "measure_load", lambda since=None: next(seen))
    monkeypatch.setattr(threads, "load_sample", lambda cpus=None: (0.0, 0.0, 0.0))
    governor = ThreadGovernor(every_s=0.0)
    trainer = FakeTrainer()
    try:
        torch.set_num_threads(2)
        governor.on_train_start(trainer, None)
        governor.on_train_batch_end(trainer)
        assert torch.get_num_threads() == 2  # one look is not enough
        governor.on_train_batch_end(trainer)
        assert torch.get_num_threads() == 1  # two agreeing looks: a neighbour took a core
        governor.on_train_batch_end(trainer)
        assert torch.get_num_threads() == 1  # the core came back once: wait for a second look
    finally:
        torch.set_num_threads(before)


def test_an_explicit_thread_count_switches_the_governor_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    governor = ThreadGovernor(every_s=0.0)
    governor.on_train_start(FakeTrainer(), None)
    monkeypatch.setattr(threads, "measure_load", lambda since=None: pytest.fail("looked"))
    governor.on_train_batch_end(FakeTrainer())
