"""A reproducible archive of the deployable site, with provenance.

The logic of stage `release`; its entry point is stages/release.py.

artifacts/release/ holds:
- sanet-tfjs.tar.gz: the site (page, TensorFlow.js copy, model, examples), entries sorted, owner
  0:0, modes 644/755, every time set to SOURCE_DATE_EPOCH (gzip header too, no file name);
- manifest.json: checkpoint sums, the pipeline.yaml hash, tool versions, the git commit, and the
  parity and smoke verdicts (worst errors to 2 significant digits; no timings, which vary);
- SHA256SUMS: of the two files above, in `sha256sum -c` format.
The same inputs give the same bytes: two clean builds in two clones produce the same archive.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import tarfile
from pathlib import Path

from .files import sha256_file
from .repo import ROOT, pinned

ARCHIVE = "sanet-tfjs.tar.gz"
TOP = "sanet-tfjs"
# The tools whose versions the manifest records; the release task reruns when one changes.
TOOLS = ("torch", "onnx", "onnx-tf", "onnxruntime", "tensorflow", "tensorflowjs")
NPM_TOOLS = ("@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm", "@tensorflow/tfjs-backend-webgpu")


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH if set, else the commit time of HEAD, else 0."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    stamp = _git("log", "-1", "--format=%ct")
    return int(stamp) if stamp.isdigit() else 0


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def git_commit() -> str:
    """The commit the repository is at, or "unknown" outside a git checkout."""
    return _git("rev-parse", "HEAD") or "unknown"


def write_archive(site: Path, dest: Path, epoch: int) -> None:
    """A tar.gz of `site` under TOP/, byte-for-byte determined by the files and `epoch`."""
    paths = sorted(site.rglob("*"), key=lambda p: p.relative_to(site).as_posix())
    with open(dest, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=epoch) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for path in [site, *paths]:
                    name = TOP if path == site else f"{TOP}/{path.relative_to(site).as_posix()}"
                    info = tarfile.TarInfo(name)
                    info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
                    if path.is_dir():
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                    else:
                        info.mode, info.size = 0o644, path.stat().st_size
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)


def _versions() -> dict[str, str]:
    return pinned(*TOOLS, *NPM_TOOLS)


def _rounded(value: float | None) -> str | None:
    return None if value is None else f"{value:.1e}"


def manifest(parity: dict, smoke: dict, lock: dict, config_path: Path, epoch: int) -> dict:
    return {
        "name": TOP,
        "source_date_epoch": epoch,
        "git_commit": git_commit(),
        "pipeline_yaml_sha256": sha256_file(config_path),
        "checkpoints": lock,
        "versions": _versions(),
        "parity": {
            stage: {
                "passed": entry["passed"],
                "worst": {k: _rounded(v["value"]) for k, v in entry["worst"].items()},
            }
            for stage, entry in parity["stages"].items()
        },
        "smoke": {
            "passed": smoke["passed"],
            "backends": {
                backend: (
                    {"max_abs": [_rounded(run["max_abs"]) for run in entry["runs"]]}
                    if entry["offered"]
                    else {"offered": False}
                )
                for backend, entry in smoke["backends"].items()
            },
        },
    }
