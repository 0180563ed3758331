"""Stage `fixtures` (fixture profile only): seeded stand-in checkpoints in the upstream format.

Reads: pipeline.yaml `fixture` (seed) and `model` (width). Writes: artifacts/fixtures/*.pth.
"""

from __future__ import annotations

from sanet_tfjs.architecture import CHECKPOINT_FILES

from . import Pipeline, code, stage


def task_fixtures(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="generate seeded stand-in checkpoints (NOT trained weights) in the upstream format",
        run="fixtures:write_fixture_checkpoints",
        args={
            "out_dir": pipeline.path("fixtures"),
            "seed": config.fixture.seed,
            "width_divisor": config.model.width_divisor,
        },
        outputs=[pipeline.path("fixtures")],
        file_dep=code("fixtures", "architecture", "model", "images", "files"),
        targets=[pipeline.path("fixtures", name) for name in CHECKPOINT_FILES],
        uptodate=[
            pipeline.watches("fixture", "model", tools=("torch", "numpy", "pillow", "matplotlib"))
        ],
    )
