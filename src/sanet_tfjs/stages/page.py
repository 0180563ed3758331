"""Stage `page` (tasks/page.py).

The web page assembled into a folder any static host can serve. Its logic is in site.py; this
module is its entry point.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..files import atomic_output, folder_bytes, sha256_file
from ..repo import ROOT
from ..site import (
    SERVICE_WORKER,
    copy_vendor_files,
    write_examples,
    write_service_worker,
)


def run_page_stage(web_dir: str, model_dir: str, out_dir: str, profile: str) -> dict:
    node_modules = ROOT / "node_modules"
    with atomic_output(Path(out_dir)) as staged:
        shutil.copytree(web_dir, staged, ignore=shutil.ignore_patterns(SERVICE_WORKER))
        shutil.copyfile(ROOT / "js" / "sanet.mjs", staged / "sanet.mjs")
        copy_vendor_files(node_modules, staged / "vendor")
        shutil.copytree(model_dir, staged / "model")
        write_examples(staged / "examples")
        tfjs_version = json.loads((node_modules / "@tensorflow/tfjs/package.json").read_text())
        model_bytes = folder_bytes(staged / "model")
        build = {
            "weights": profile,
            "model_bytes": model_bytes,
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
    print(
        f"  site: {out_dir} (model {model_bytes / 1e6:.1f} MB, TensorFlow.js {build['tfjs']}, "
        f"offline cache version {version})"
    )
    return {key: build[key] for key in ("weights", "model_bytes", "tfjs")}
