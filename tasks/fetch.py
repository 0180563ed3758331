"""Stage `fetch`: the three upstream checkpoints, verified against the sha256 lock.

Reads: pipeline.yaml `fetch` (and, in the fixture profile, the `fixture` and `model` sections
that name the fixture set). Writes: artifacts/checkpoints/*.pth and, on a first fetch, the
lock file beside pipeline.yaml. The mirror is not watched: where the bytes come from does not
change them, the lock does.
"""

from __future__ import annotations

import json
from pathlib import Path

from doit.tools import config_changed

from sanet_tfjs.architecture import CHECKPOINT_FILES

from . import Pipeline, code, stage

MIRROR_PARAM = {
    "name": "mirror",
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


def _installed_match_lock(lock_path: str, key: str):
    """Up to date only while the last fetch installed exactly the sums the lock holds now."""

    def check(task, values) -> bool:  # noqa: ARG001 - doit's uptodate signature
        try:
            locked = json.loads(Path(lock_path).read_text())["checkpoints"][key]
        except (OSError, ValueError, KeyError):
            return False
        return all(
            values.get(name) == locked.get(name, {}).get("sha256") for name in CHECKPOINT_FILES
        )

    return check


def task_fetch(pipeline: Pipeline) -> dict:
    config = pipeline.config
    fixture = config.fetch.profile == "fixture"
    key = lock_key(pipeline)
    lock_path = pipeline.beside_config(config.fetch.lock_file)
    watched = {k: v for k, v in config.section("fetch").items() if k != "mirror"}
    watched["lock_key"] = key

    return stage(
        pipeline,
        doc="download the SANet checkpoints (fixture profile: from a loopback server)",
        run="fetch:run_fetch_stage",
        args={
            "fetch": config.section("fetch"),
            "key": key,
            "dest_dir": pipeline.path("checkpoints"),
            "lock_path": lock_path,
            "fixture_dir": pipeline.path("fixtures") if fixture else None,
        },
        outputs=[pipeline.path("checkpoints")],
        params=[MIRROR_PARAM],
        file_dep=code("fetch", "server", "files")
        + ([pipeline.path("fixtures", name) for name in CHECKPOINT_FILES] if fixture else []),
        targets=[pipeline.path("checkpoints", name) for name in CHECKPOINT_FILES],
        uptodate=[config_changed(watched), _installed_match_lock(lock_path, key)],
    )
