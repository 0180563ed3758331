"""Stage `page` (tasks/page.py).

The web page assembled into a folder any static host can serve. Its logic is in site.py; this
module is its entry point.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TypedDict

from ..files import atomic_output, folder_bytes, sha256_file
from ..repo import ROOT
from ..site import (
    SERVICE_WORKER,
    copy_vendor_files,
    write_examples,
    write_service_worker,
)

EXACT_BUNDLE = "model"  # the float32 bundle, checked against PyTorch at the parity tolerance
SMALL_BUNDLE = "model-small"  # the fewest bytes within tfjs.fidelity: the page's default


class Fidelity(TypedDict):
    psnr_db: float  # the worst over `resolutions`, against the float32 model
    ssim: float
    resolutions: list[int]
    measured_with: str


class Bundle(TypedDict, total=False):
    path: str  # its folder in the site
    bytes: int  # what the page downloads: model.json and the weight shards
    quantization: str  # none | auto
    fidelity: Fidelity  # the budgeted bundle's, as its plan measured it


def small_bundle_fidelity(tfjs_report: str) -> Fidelity:
    """The budgeted bundle's fidelity as the plan stage measured it (PyTorch, the bench's
    pair), from its tfjs report's quantization_plan. The smoke measures it again in Chromium."""
    plan = json.loads(Path(tfjs_report).read_text())["quantization_plan"]
    chosen = plan["chosen"]
    return {
        "psnr_db": chosen["psnr_db"],
        "ssim": chosen["ssim"],
        "resolutions": plan["target"]["resolutions"],
        "measured_with": "PyTorch, the plan stage (the benchmark's pair)",
    }


def run_page_stage(
    web_dir: str,
    model_dir: str,
    out_dir: str,
    profile: str,
    small_dir: str | None = None,
    small_fidelity: Fidelity | None = None,
) -> dict:
    """The site around the exact bundle in `model_dir` and, if given, the budgeted one in
    `small_dir` (with its `small_fidelity`), which the page then loads by default."""
    node_modules = ROOT / "node_modules"
    with atomic_output(Path(out_dir)) as staged:
        shutil.copytree(web_dir, staged, ignore=shutil.ignore_patterns(SERVICE_WORKER))
        shutil.copyfile(ROOT / "js" / "sanet.mjs", staged / "sanet.mjs")
        copy_vendor_files(node_modules, staged / "vendor")
        shutil.copytree(model_dir, staged / EXACT_BUNDLE)
        bundles: dict[str, Bundle] = {
            "exact": {
                "path": EXACT_BUNDLE,
                "bytes": folder_bytes(staged / EXACT_BUNDLE),
                "quantization": "none",
            }
        }
        if small_dir is not None:
            shutil.copytree(small_dir, staged / SMALL_BUNDLE)
            bundles["small"] = {
                "path": SMALL_BUNDLE,
                "bytes": folder_bytes(staged / SMALL_BUNDLE),
                "quantization": "auto",
            }
            if small_fidelity is not None:
                bundles["small"]["fidelity"] = small_fidelity
        write_examples(staged / "examples")
        tfjs_version = json.loads((node_modules / "@tensorflow/tfjs/package.json").read_text())
        build = {
            "weights": profile,
            # The float32 bundle's bytes: what the weights take in memory (the page's memory
            # guard), whichever bundle is downloaded.
            "model_bytes": bundles["exact"]["bytes"],
            "bundles": bundles,
            "default_bundle": "small" if "small" in bundles else "exact",
            "tfjs": tfjs_version["version"],
            # Every file's sum: what was deployed can be checked, and build.json changes
            # whenever any file of the site does (the smoke stage depends on it alone, and
            # the service worker names its cache after it).
            "files": {
                str(path.relative_to(staged)): sha256_file(path)
                for path in sorted(staged.rglob("*"))
                if path.is_file()
            },
        }
        (staged / "build.json").write_text(json.dumps(build, indent=2) + "\n")
        template = Path(web_dir) / SERVICE_WORKER
        version = write_service_worker(staged, template, staged / "build.json")
    sizes = ", ".join(f"{name} {b['bytes'] / 1e6:.1f} MB" for name, b in bundles.items())
    print(
        f"  site: {out_dir} (model bundles: {sizes}; the page loads {build['default_bundle']}; "
        f"TensorFlow.js {build['tfjs']}, offline cache version {version})"
    )
    return {
        "weights": profile,
        "model_bytes": build["model_bytes"],
        "download_bytes": bundles[build["default_bundle"]]["bytes"],
        "tfjs": build["tfjs"],
    }
