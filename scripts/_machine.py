"""The machine a benchmark ran on, as every scripts/bench_*.py quotes it under its tables: one rule.

Imported by the scripts as `_machine` (a script's own folder is first on sys.path when it runs).
"""

from __future__ import annotations

import os


def cpu_model() -> str:
    """'AMD EPYC 7B13': the CPU's model name, as tunetorch records a trial's device."""
    from tunetorch.executors.device import device_name

    return device_name("cpu").removeprefix("CPU: ")


def machine(with_gpu: bool = False) -> str:
    """'AMD EPYC 7B13, 2 cores' (with_gpu: ', no CUDA; torch 2.13.0+cpu' or the GPU's name)."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    if with_gpu:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
        text += f", {gpu}; torch {torch.__version__}"
    return text
