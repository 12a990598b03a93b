"""Fast paths measured by ``temporal_nsr.bench``: reduced precision, memory format, allocator.

Each switch here changes only how the network runs, never what it computes beyond rounding:

* ``inference_dtype``: bfloat16 where the hardware has native bf16 (CUDA with bf16, or a CPU
  whose oneDNN build reports bf16 support, e.g. AVX512-BF16 / AMX) and, on a CPU, where it is
  also measured to be faster (``bf16_pays``): about 2x faster on an AMD EPYC with AVX512-BF16,
  but slower than float32 on an Intel Xeon with AVX512-BF16 and no AMX; renders within ~40 dB
  PSNR of float32.
* ``to_channels_last``: NHWC / NDHWC weights, which oneDNN's bf16 convolutions prefer (it pays
  in bf16 inference; in float32 inference on a CPU only for the 2D convolutions; not in
  training; see docs/performance.md).
* ``keep_freed_memory``: stop glibc from returning large freed tensors to the OS, which is
  re-faulted page by page on the next step (docs/design.md §7).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import time
from typing import Any, NamedTuple

import torch
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively (fast), not by emulation."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


# bf16 must beat float32 by this factor in the probe to be chosen automatically: a tie is not
# worth bf16's rounding.
BF16_MIN_SPEEDUP = 1.15


def _probe_seconds(dtype: torch.dtype, rounds: int) -> list[float]:
    """Seconds of forward + backward of the convolutions that dominate a step, per round."""
    generator = torch.Generator().manual_seed(0)
    volume = torch.nn.Conv3d(32, 32, 3, padding=1).to(dtype)
    plane = torch.nn.Conv2d(64, 64, 3, padding=1).to(dtype)
    x3 = torch.randn(2, 32, 16, 16, 16, generator=generator).to(dtype).requires_grad_()
    x2 = torch.randn(4, 64, 32, 32, generator=generator).to(dtype).requires_grad_()
    times = []
    for _ in range(rounds + 1):  # the first round creates the oneDNN primitives
        start = time.perf_counter()
        (volume(x3).float().sum() + plane(x2).float().sum()).backward()
        times.append(time.perf_counter() - start)
    return times[1:]


@functools.cache
def bf16_speedup(device_type: str = "cpu") -> float | None:
    """How many times faster bfloat16 runs this model's convolutions than float32 on the CPU.

    Measured once per process: forward + backward of a 3D and a 2D convolution of this model's
    sizes in both dtypes, interleaved (about 0.4 s). None where no probe applies: bf16 is not
    native on ``device_type`` (it would be emulated), or the device is not a CPU.
    """
    device = torch.device(device_type)
    if device.type != "cpu" or not bf16_native(device):
        return None
    fp32, bf16 = [], []
    for _ in range(3):  # interleaved, so a busy machine slows both alike
        fp32 += _probe_seconds(torch.float32, 1)
        bf16 += _probe_seconds(torch.bfloat16, 1)
    speedup = min(fp32) / min(bf16)
    log.info("bf16 vs float32 convolutions on this CPU: %.2fx", speedup)
    return speedup


def bf16_pays(device_type: str = "cpu") -> bool:
    """Whether bfloat16 is native on ``device_type`` AND faster than float32 there.

    On CUDA, native bf16 is enough. On a CPU, native bf16 can still lose: oneDNN's AVX512-BF16
    kernels on an Intel Xeon without AMX run this model's training step 1.3x slower than
    float32 (docs/performance.md), while an AMD EPYC runs it 1.6x faster; so bf16 is chosen
    where ``bf16_speedup`` is at least ``BF16_MIN_SPEEDUP``.
    """
    device = torch.device(device_type)
    if not bf16_native(device):
        return False
    if device.type != "cpu":
        return True
    speedup = bf16_speedup(device_type)
    return speedup is not None and speedup >= BF16_MIN_SPEEDUP


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """dtype to run inference in: "fp32", "bf16", or "auto" (bf16 where ``bf16_pays``).

    Raises:
        ValueError: an unknown precision, or "bf16" on a device without native bf16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {PRECISIONS}")
    if precision == "fp32" or (precision == "auto" and not bf16_pays(device.type)):
        return torch.float32
    if not bf16_native(device):
        raise ValueError(
            f"precision=bf16: {device} has no native bfloat16 support (it would be slower "
            "than float32); use precision=fp32 or auto"
        )
    return torch.bfloat16


def to_channels_last(module: nn.Module, dims: tuple[int, ...] = (2, 3)) -> nn.Module:
    """Convert the weights of every (transposed) convolution with ``dims`` spatial dimensions
    (2, 3 or both) to channels-last, in place."""
    for layer in module.modules():
        if 2 in dims and isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            layer.to(memory_format=torch.channels_last)
        elif 3 in dims and isinstance(layer, nn.Conv3d | nn.ConvTranspose3d):
            layer.to(memory_format=torch.channels_last_3d)
    return module


def keep_freed_memory(top_pad_mb: int = 256) -> bool:
    """Keep freed tensors in the process heap instead of returning them to the OS (glibc).

    glibc serves allocations above its mmap threshold (at most 32 MB) with fresh mmaps and
    unmaps them on free, so every large activation of every training step is page-faulted
    in again. Raising the mmap and trim thresholds keeps that memory mapped and reused.
    Process-wide and irreversible; a no-op returning False where glibc is absent.

    Args:
        top_pad_mb: extra heap grown per request, so the heap grows in few large steps.
    """
    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return False
    try:
        libc = ctypes.CDLL(name)
        done = (
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)  # 1 GiB: larger blocks still get mmaps
            and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
            and libc.mallopt(_M_TOP_PAD, top_pad_mb << 20)
        )
    except (OSError, AttributeError):
        return False
    log.debug("glibc heap kept across steps: %s", bool(done))
    return bool(done)


class PrecisionChoice(NamedTuple):
    """The Lightning precision a training runs in, and why (logged, and kept in metrics.json)."""

    setting: str  # as configured: "auto" or a Lightning precision ("32-true", "bf16-mixed", ...)
    precision: str  # what the trainer is built with
    bf16_speedup: float | None  # the probe's figure behind an "auto" on a CPU; None: no probe

    def record(self) -> dict[str, Any]:
        """The JSON form metrics.json stores as ``precision_choice``."""
        speedup = None if self.bf16_speedup is None else round(self.bf16_speedup, 3)
        return {"setting": self.setting, "precision": self.precision, "bf16_speedup": speedup}


def training_precision(setting: Any, device_type: str) -> PrecisionChoice:
    """Decide ``trainer.precision``: "auto" becomes "bf16-mixed" where ``bf16_pays`` on the
    device that trains (a CPU measures it, see ``bf16_speedup``), else "32-true"; any other
    setting is kept as it is.

    Called where the trainer is built (``training.fit``), never while a config resolves: the
    same command composes to the same config on a busy machine and an idle one.

    Args:
        setting: ``trainer.precision`` as composed.
        device_type: "cpu" or "cuda": where the training runs.
    """
    if str(setting) != "auto":
        return PrecisionChoice(str(setting), str(setting), None)
    speedup = bf16_speedup(device_type) if device_type == "cpu" else None
    precision = "bf16-mixed" if bf16_pays(device_type) else "32-true"
    return PrecisionChoice("auto", precision, speedup)
