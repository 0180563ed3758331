"""Stage `fixtures` (fixture profile only): seeded stand-in checkpoints in the upstream format.

Reads: pipeline.yaml `fixture` (seed) and `model` (width). Writes: artifacts/fixtures/*.pth.
"""

from __future__ import annotations

from sanet_tfjs.architecture import CHECKPOINT_FILES

from . import Pipeline, code, stage_action


def task_fixtures(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return {
        "doc": "generate seeded stand-in checkpoints (NOT trained weights) in the upstream format",
        "actions": [
            stage_action(
                "fixtures:write_fixture_checkpoints",
                out_dir=pipeline.path("fixtures"),
                seed=config.fixture.seed,
                width_divisor=config.model.width_divisor,
            )
        ],
        "file_dep": code("fixtures", "architecture", "model", "images", "files"),
        "targets": [pipeline.path("fixtures", name) for name in CHECKPOINT_FILES],
        "uptodate": [
            pipeline.watches("fixture", "model", tools=("torch", "numpy", "pillow", "matplotlib"))
        ],
        "clean": True,
    }
