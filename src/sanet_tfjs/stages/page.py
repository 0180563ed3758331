"""Stage `page` (tasks/page.py).

The web page assembled into a folder any static host can serve. Its logic is in site.py; this
module is its entry point.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TypedDict

from ..bundles import EXACT_BUNDLE, FIDELITY_JSON, SMALL_BUNDLE
from ..files import atomic_output, folder_bytes, sha256_file
from ..repo import ROOT
from ..site import (
    SERVICE_WORKER,
    copy_vendor_files,
    write_examples,
    write_service_worker,
)


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


def run_page_stage(
    web_dir: str,
    model_dir: str,
    out_dir: str,
    profile: str,
    small_dir: str | None = None,
    small_fidelity: Fidelity | None = None,
) -> dict:
    """The site around the exact bundle in `model_dir` and, if `small_dir` holds one, the
    small one, which the page then loads by default; its fidelity is `small_fidelity`, or what
    the tfjs stage wrote beside it (an auto bundle's plan)."""
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
        if small_dir is not None and (Path(small_dir) / "model.json").is_file():
            written = Path(small_dir) / FIDELITY_JSON
            if small_fidelity is None and written.is_file():
                small_fidelity = json.loads(written.read_text())
            shutil.copytree(
                small_dir, staged / SMALL_BUNDLE, ignore=shutil.ignore_patterns(FIDELITY_JSON)
            )
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
