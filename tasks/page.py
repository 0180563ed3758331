"""Stage `page`: the web page with its own TensorFlow.js copy and the model, in artifacts/site/.

Reads: pipeline.yaml `fetch.profile` only (the page says when its weights are stand-ins).
Writes: artifacts/site/ (serve it with any static server).
"""

from __future__ import annotations

from doit.tools import config_changed

from . import ROOT, Pipeline, code, stage, toolchain

WEB_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "web").iterdir() if p.is_file())


def task_page(pipeline: Pipeline) -> dict:
    weights = pipeline.config.fetch.profile
    return stage(
        pipeline,
        doc="assemble the stylization web page with its own TensorFlow.js and the model",
        run="site:run_page_stage",
        args={
            "web_dir": "web",
            "model_dir": pipeline.path("tfjs"),
            "out_dir": pipeline.path("site"),
            "weights": weights,
        },
        outputs=[pipeline.path("site")],
        # tfjs_parity.json is rewritten by every tfjs build: the model's shards changed.
        file_dep=[
            *WEB_SOURCES,
            "js/sanet.mjs",
            pipeline.path("tfjs", "model.json"),
            pipeline.path("tfjs_parity.json"),
        ]
        + code("site", "images", "files"),
        targets=[pipeline.path("site", "index.html"), pipeline.path("site", "build.json")],
        uptodate=[
            config_changed(
                {
                    "weights": weights,
                    "toolchain": toolchain("@tensorflow/tfjs", "coi-serviceworker", "matplotlib"),
                }
            )
        ],
    )
