"""The task graph: which stages exist for the loaded pipeline.yaml, in build order."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from sanet_tfjs.errors import PipelineError

from . import (
    Pipeline,
    bench,
    fetch,
    fixtures,
    hash_cache_checker,
    onnx,
    page,
    patch,
    plan,
    release,
    report,
    smoke,
    tf,
    tfjs,
    tfstyle,
)
from .progress import CommitEachStageReporter

# `doit` builds every stage but these: asked for by name (`doit release`, `doit bench`), or
# built for a stage that reads them (plan: for an `auto` bundle; with `tfjs.quantization:
# auto`, the default, the default build's tfjs reads it, so it is a default task then).
ON_DEMAND = ("plan", "release", "bench")


def _bind(creator: Callable[[Pipeline], dict], pipeline: Pipeline) -> Callable[[], dict]:
    def task_creator() -> dict:
        return creator(pipeline)

    task_creator.__name__ = creator.__name__
    task_creator.__doc__ = creator.__doc__
    return task_creator


def load_graph() -> dict[str, Any]:
    """dodo.py's namespace: DOIT_CONFIG and one `task_<stage>` creator per stage."""
    try:
        pipeline = Pipeline.load()
    except PipelineError as exc:  # e.g. an invalid pipeline.yaml: one message, nothing built
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    pipeline.artifacts.mkdir(parents=True, exist_ok=True)

    creators = [
        fetch.task_fetch,
        patch.task_patch,
        onnx.task_onnx,
        tf.task_tf,
        tfstyle.task_tfstyle,
        plan.task_plan,
        tfjs.task_tfjs,
        report.task_report,
        page.task_page,
        smoke.task_smoke,
        release.task_release,
        bench.task_bench,
    ]
    if pipeline.config.fetch.profile == "fixture":
        creators.insert(0, fixtures.task_fixtures)

    names = [creator.__name__.removeprefix("task_") for creator in creators]
    # The plan is part of the default build when the page's small bundle follows it.
    planned = {"plan"} if pipeline.setting("tfjs.quantization") == "auto" else set()
    default = [name for name in names if name not in ON_DEMAND or name in planned]
    namespace: dict[str, Any] = {
        "DOIT_CONFIG": {
            "default_tasks": default,
            # sqlite3 commits in transactions: a build killed while doit saves leaves the
            # previous state, where the json backend left a torn file. The reporter commits
            # after each finished stage (tasks/progress.py).
            "dep_file": str(pipeline.artifacts / ".doit.sqlite3"),
            "backend": "sqlite3",
            "reporter": CommitEachStageReporter,
            "verbosity": 2,  # stages print progress and summaries as they go
            "check_file_uptodate": hash_cache_checker(pipeline.hash_cache),
        }
    }
    namespace.update({creator.__name__: _bind(creator, pipeline) for creator in creators})
    return namespace
