"""Stage `fixtures` (fixture profile only): seeded stand-in checkpoints in the upstream format."""

from __future__ import annotations

from . import Pipeline, stage


def task_fixtures(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "fixtures",
        doc="generate seeded stand-in checkpoints (NOT trained weights) in the upstream format",
        run="stages.fixtures:run_fixtures_stage",
        reads=("fixture.seed", "model.width_divisor"),
        tools=("torch", "numpy", "pillow", "matplotlib"),
    )
