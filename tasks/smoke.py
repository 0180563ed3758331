"""Stage `smoke`: the page in headless Chromium (Playwright), its pixels against PyTorch (the
exact bundle) and the small bundle's against the exact one's (tfjs.fidelity). Writes
artifacts/smoke/smoke.json (errors against PyTorch, the small bundle's fidelity), timings.json
and a screenshot per backend."""

from __future__ import annotations

from . import Pipeline, each_key, stage


def task_smoke(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "smoke",
        doc="stylize in real headless Chromium; compare with PyTorch; time each backend",
        run="stages.smoke:run_smoke_stage",
        args={"site_dir": pipeline.folder("page"), "patched_dir": pipeline.folder("patch")},
        reads=("model.width_divisor", "tfjs.fidelity", *each_key("smoke")),
        inputs=("page", "patch"),
        tools=("playwright", "torch"),
    )
