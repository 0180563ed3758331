"""TensorFlow.js in Node: a TFJS bundle run on numpy inputs by js/run_model.mjs (the page's
own js/sanet.mjs call, on the wasm backend unless told otherwise)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import PipelineError
from ..repo import ROOT

NODE_RUNNER = ROOT / "js" / "run_model.mjs"


class NodeRunError(PipelineError):
    """Node is missing, or TensorFlow.js in Node failed."""


def run_in_node(model_dir: Path, cases: list[tuple], backend: str = "wasm") -> dict:
    """Run (content, style, iters, max_resolution) cases in Node (js/run_model.mjs): each
    case's result, and its result again with the style features of the first run fed back
    (`restyled`), with timings."""
    if shutil.which("node") is None:
        raise NodeRunError("node is not installed; run scripts/setup.sh")
    with tempfile.TemporaryDirectory(prefix="tfjs-cases-") as folder:
        folder = Path(folder)
        specs = []
        for index, (content, style, iters, max_resolution) in enumerate(cases):
            entry = {"iters": iters, "max_resolution": max_resolution}
            for name, image in (("content", content), ("style", style)):
                np.ascontiguousarray(image, np.float32).tofile(folder / f"{name}_{index}.bin")
                entry[name] = {"file": f"{name}_{index}.bin", "shape": list(image.shape)}
            specs.append(entry)
        (folder / "cases.json").write_text(json.dumps(specs))
        done = subprocess.run(
            ["node", str(NODE_RUNNER), str(Path(model_dir).resolve()), str(folder), backend],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise NodeRunError(f"TensorFlow.js in Node failed:\n{done.stderr[-3000:]}")
        report = json.loads((folder / "results.json").read_text())
        for index, entry in enumerate(report["results"]):
            if "shape" in entry:
                for key in ("result", "restyled"):
                    data = np.fromfile(folder / f"{key}_{index}.bin", np.float32)
                    entry[key] = data.reshape(entry["shape"])
    return report
