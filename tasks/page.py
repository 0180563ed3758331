"""Stage `page`: the web page with its own TensorFlow.js copy and the model, in artifacts/site/
(serve it with any static server). It reads `fetch.profile`: the page says when its weights are
stand-ins."""

from __future__ import annotations

from . import Pipeline, stage


def task_page(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "page",
        doc="assemble the stylization web page with its own TensorFlow.js and the model",
        run="stages.page:run_page_stage",
        args={
            "web_dir": "web",
            "model_dir": pipeline.folder("tfjs"),
            "small_dir": pipeline.products("tfjs")[1],  # carried when it holds a bundle
        },
        reads=("fetch.profile",),
        inputs=("tfjs",),
        scripts=("web", "js/sanet.mjs"),
        tools=(
            "@tensorflow/tfjs",
            "@tensorflow/tfjs-backend-wasm",
            "@tensorflow/tfjs-backend-webgpu",
            "matplotlib",
        ),
    )
