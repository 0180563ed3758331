"""Running a Node script of the repository's JavaScript from a test, with real TensorFlow.js."""

from __future__ import annotations

import json
import subprocess

from sanet_tfjs.repo import ROOT


def node_json(args: list[str], timeout: int) -> dict:
    """`node args...` in the repository root; its last line of output, as JSON. Fails the test
    with the end of its stderr where it exits non-zero."""
    done = subprocess.run(
        ["node", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
