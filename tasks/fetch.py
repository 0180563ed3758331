"""Stage `fetch`: the three upstream checkpoints, verified against the sha256 lock.

Writes artifacts/checkpoints/*.pth and, on a first fetch, the lock file beside pipeline.yaml
(which it also reads: an edited entry reruns it). The mirror is read but not watched: where the
bytes come from does not change them, the lock does. In the fixture profile the checkpoints
come from the `fixtures` stage through a loopback server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sanet_tfjs.architecture import CHECKPOINT_FILES

from . import Pipeline, each_key, stage

MIRROR_PARAM = {
    "name": "mirror_override",
    "long": "mirror",
    "type": str,
    "default": "",
    "help": "folder or http(s) base URL holding the checkpoints, tried first "
    "(also SANET_MIRROR, or fetch.mirror in pipeline.yaml)",
}


def lock_key(pipeline: Pipeline) -> str:
    """Which set of checkpoints the lock entries describe."""
    config = pipeline.config
    if config.fetch.profile == "upstream":
        return "upstream"
    return f"fixture:seed={config.fixture.seed}:width_divisor={config.model.width_divisor}"


def lock_path(pipeline: Pipeline) -> str:
    return pipeline.beside_config(pipeline.config.fetch.lock_file)


def installed_match_lock(lock: str, key: str) -> Callable:
    """Up to date only while the last fetch installed exactly the sums the lock holds now
    (the lock may not exist before the first fetch, so it cannot be a file_dep)."""

    def check(task, values) -> bool:  # noqa: ARG001 - doit's uptodate signature
        try:
            locked = json.loads(Path(lock).read_text())["checkpoints"][key]
        except (OSError, ValueError, KeyError):
            return False
        return all(
            values.get(name) == locked.get(name, {}).get("sha256") for name in CHECKPOINT_FILES
        )

    return check


def task_fetch(pipeline: Pipeline) -> dict:
    fixture = pipeline.config.fetch.profile == "fixture"
    return stage(
        pipeline,
        "fetch",
        doc="download the SANet checkpoints (fixture profile: from a loopback server)",
        run="stages.fetch:run_fetch_stage",
        args={
            "key": lock_key(pipeline),
            "lock_path": lock_path(pipeline),
            "fixture_dir": pipeline.folder("fixtures") if fixture else None,
        },
        reads=(*each_key("fetch"), "model.width_divisor"),  # the width: to validate new files
        unwatched=("fetch.mirror",),
        inputs=("fixtures",) if fixture else (),
        checks=[
            (installed_match_lock(lock_path(pipeline), lock_key(pipeline)), [lock_path(pipeline)])
        ],
        params=[MIRROR_PARAM],
    )
