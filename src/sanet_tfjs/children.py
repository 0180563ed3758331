"""Child Python processes that run one of this package's modules (`python -m sanet_tfjs.x`):
for work that must not share the parent's state (a fixed hash seed, its own peak memory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .errors import PipelineError

PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # src/: where `sanet_tfjs` is importable


def run_module(
    module: str,
    *args: str,
    what: str,
    error: type[PipelineError] = PipelineError,
    env: dict[str, str] | None = None,
) -> None:
    """Run `python -m sanet_tfjs.<module> *args` with this interpreter; raise `error` naming
    `what` failed, with the end of the child's stderr, if it exits non-zero."""
    done = subprocess.run(
        [sys.executable, "-m", f"sanet_tfjs.{module}", *args],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_PARENT), **(env or {})},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise error(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
