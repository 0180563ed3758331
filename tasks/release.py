"""Stage `release` (run it by name: `doit release`): a reproducible archive with provenance.

Reads: pipeline.yaml (its hash goes into the manifest), the checkpoint lock, the parity and
smoke reports, and SOURCE_DATE_EPOCH. Writes: artifacts/release/.
"""

from __future__ import annotations

import os

from doit.tools import config_changed

from sanet_tfjs.release import NPM_TOOLS, TOOLS

from . import Pipeline, code, stage, toolchain
from .fetch import lock_key

RECORDED_TOOLS = (*TOOLS, *NPM_TOOLS)  # what the manifest records: a change reruns the release


def task_release(pipeline: Pipeline) -> dict:
    lock_path = pipeline.beside_config(pipeline.config.fetch.lock_file)
    return stage(
        pipeline,
        doc="archive the site reproducibly with a provenance manifest and SHA256SUMS",
        run="release:run_release_stage",
        args={
            "site_dir": pipeline.path("site"),
            "parity_path": pipeline.path("parity.json"),
            "smoke_path": pipeline.path("smoke", "smoke.json"),
            "lock_path": lock_path,
            "lock_key": lock_key(pipeline),
            "config_path": str(pipeline.config_path),
            "out_dir": pipeline.path("release"),
        },
        outputs=[pipeline.path("release")],
        file_dep=[
            pipeline.path("site", "build.json"),
            pipeline.path("parity.json"),
            pipeline.path("smoke", "smoke.json"),
            lock_path,
            pipeline.beside_config(pipeline.config_path.name),
        ]
        + code("release", "files"),
        targets=[pipeline.path("release", name) for name in ("manifest.json", "SHA256SUMS")],
        uptodate=[
            config_changed(
                {
                    "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", ""),
                    "toolchain": toolchain(*RECORDED_TOOLS),
                }
            )
        ],
    )
