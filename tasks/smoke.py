"""Stage `smoke`: the page in headless Chromium (Playwright), its pixels against PyTorch.

Reads: pipeline.yaml `smoke`, `model`. Writes: artifacts/smoke/smoke.json (timings per backend
and resolution, errors against PyTorch) and a screenshot per backend.
"""

from __future__ import annotations

from . import Pipeline, code, stage


def task_smoke(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="stylize in real headless Chromium; compare with PyTorch; time each backend",
        run="smoke:run_smoke_stage",
        args={
            "site_dir": pipeline.path("site"),
            "patched_dir": pipeline.path("patched"),
            "out_dir": pipeline.path("smoke"),
            "width_divisor": config.model.width_divisor,
            "backends": config.smoke.backends,
            "checked_backends": config.smoke.checked_backends,
            "iters": config.smoke.iters,
            "max_abs": config.smoke.max_abs,
        },
        outputs=[pipeline.path("smoke")],
        # build.json holds the sum of every file of the site: any change reruns the smoke.
        file_dep=[pipeline.path("site", "build.json")]
        + code("smoke", "browser", "server", "stylize"),
        targets=[pipeline.path("smoke", "smoke.json")],
        uptodate=[pipeline.watches("smoke", "model", tools=("playwright", "torch"))],
    )
