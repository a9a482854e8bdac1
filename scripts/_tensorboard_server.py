"""TensorBoard on 127.0.0.1 for the screenshot scripts: one way to start it and wait for it.

Imported by the scripts as `_tensorboard_server` (a script's own folder is first on sys.path).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tensorboard(
    logdir: Path, timeout: float = 90, need_runs: bool = True
) -> tuple[subprocess.Popen, str]:
    """TensorBoard on a free port, reloading every second; returns (process, base URL) once
    /data/runs answers (and lists a run, with `need_runs`: a study's TensorBoard before its
    first trial has none)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tensorboard exited: {proc.stderr.read()[-500:]}")
        try:
            with urllib.request.urlopen(f"{url}/data/runs", timeout=2) as r:
                if json.loads(r.read()) or not need_runs:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"tensorboard did not answer within {timeout:.0f} s")
