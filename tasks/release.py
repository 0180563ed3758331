"""Stage `release` (run it by name: `doit release`): a reproducible archive with provenance.

Reads the site, the parity and smoke reports, the checkpoint lock, pipeline.yaml itself (its
hash goes into the manifest), SOURCE_DATE_EPOCH and the git commit. Writes artifacts/release/.
"""

from __future__ import annotations

import os

from sanet_tfjs.release import NPM_TOOLS, TOOLS, git_commit

from . import Pipeline, stage
from .fetch import lock_key, lock_path
from .layout import SMOKE_REPORT


def task_release(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "release",
        doc="archive the site reproducibly with a provenance manifest and SHA256SUMS",
        run="stages.release:run_release_stage",
        args={
            "site_dir": pipeline.folder("page"),
            "parity_path": pipeline.products("report")[0],
            "smoke_path": pipeline.path(SMOKE_REPORT),
            "lock_path": lock_path(pipeline),
            "lock_key": lock_key(pipeline),
            "config_path": pipeline.beside_config(pipeline.config_path.name),
        },
        inputs=("page", "report", "smoke"),
        files=(lock_path(pipeline), pipeline.beside_config(pipeline.config_path.name)),
        tools=(*TOOLS, *NPM_TOOLS),  # what the manifest records: a change reruns the release
        watch={
            "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", ""),
            "git_commit": git_commit(),
        },
    )
