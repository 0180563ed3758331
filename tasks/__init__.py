"""The doit wiring: one module per stage, and what they share.

Each stage module defines `task_<stage>(pipeline)` returning one doit task, made by `stage()`:
its file_dep, targets, the pipeline.yaml section(s) it reads (`Pipeline.watches`), the outputs
whose sums it records, and a single action that calls into `src/sanet_tfjs`. Nothing here
imports torch or tensorflow: stage code is imported inside the action, so `doit list` stays
instant.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from doit.action import TaskFailed
from doit.dependency import MD5Checker
from doit.tools import config_changed

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "sanet_tfjs"
CONFIG_ENV = "SANET_PIPELINE"
OUTPUTS_KEY = "outputs"  # the saved value holding the sums of what a stage wrote

if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from sanet_tfjs.config import PipelineConfig, load_config  # noqa: E402 - needs the path above
from sanet_tfjs.errors import PipelineError  # noqa: E402
from sanet_tfjs.integrity import HashCache, changed_outputs, record_outputs  # noqa: E402
from sanet_tfjs.repo import pinned  # noqa: E402


def _relative(path: Path) -> str:
    # doit keys its database on these strings: paths relative to the repository keep a
    # restored cache valid in a clone at another location.
    return os.path.relpath(path, ROOT)


@dataclass(frozen=True)
class Pipeline:
    """The loaded pipeline.yaml and the paths every stage derives from it."""

    config: PipelineConfig
    config_path: Path

    @classmethod
    def load(cls) -> Pipeline:
        config_path = Path(os.environ.get(CONFIG_ENV, ROOT / "pipeline.yaml")).resolve()
        return cls(load_config(config_path), config_path)

    @cached_property
    def artifacts(self) -> Path:
        return (self.config_path.parent / self.config.artifacts_dir).resolve()

    def path(self, *parts: str) -> str:
        """A path under artifacts/, as the relative string doit tracks."""
        return _relative(self.artifacts.joinpath(*parts))

    def beside_config(self, name: str) -> str:
        return _relative(self.config_path.parent / name)

    @cached_property
    def hash_cache(self) -> HashCache:
        return HashCache(self.artifacts / ".hash-cache.json")

    def watches(self, *sections: str, tools: tuple[str, ...] = ()) -> Any:
        """doit `uptodate` check on the named pipeline.yaml sections and tool versions."""
        watched = {name: self.config.section(name) for name in sections}
        watched["toolchain"] = toolchain(*tools)
        return config_changed(watched)


def toolchain(*packages: str) -> dict[str, str]:
    """The pinned versions of the packages a stage's output depends on: a lock-file change
    to any of them reruns the stage (and only such a change does)."""
    return pinned(*packages)


def code(*modules: str) -> list[str]:
    """The source files of `sanet_tfjs` modules a stage runs: editing one reruns the stage."""
    return [_relative(SRC / f"{module}.py") for module in modules]


def stage(
    pipeline: Pipeline,
    *,
    doc: str,
    run: str,
    args: dict[str, Any],
    outputs: list[str],
    file_dep: list[str],
    targets: list[str],
    uptodate: list[Any] = (),
    params: list[dict] = (),
) -> dict:
    """The doit task of one stage: `run` ("module:function" in sanet_tfjs) called with `args`.

    `outputs` are the files and folders the stage writes. Their sums are recorded when the
    stage succeeds and checked before they are trusted again: an output edited, truncated,
    removed or added on disk makes the stage rebuild (see sanet_tfjs.integrity).
    """
    return {
        "doc": doc,
        "actions": [_action(run, args, outputs, pipeline.hash_cache)],
        "params": list(params),
        "file_dep": file_dep,
        "targets": targets,
        "uptodate": [*uptodate, _outputs_intact(outputs, pipeline.hash_cache)],
        "clean": True,
    }


def _action(target: str, args: dict[str, Any], outputs: list[str], cache: HashCache) -> tuple:
    # The module is imported only when the action runs (torch stays out of `doit list`), and a
    # PipelineError is reported as its plain message, without a traceback.
    module_name, function_name = target.split(":")

    def run(**options: Any) -> Any:  # doit passes the task's command-line params here
        # Stages write to the real streams: doit's stand-ins (no capture at verbosity 2) would
        # be bound by TensorFlow's log handler and break logging's shutdown at exit.
        started = time.monotonic()
        with redirect_stdout(sys.__stdout__), redirect_stderr(sys.__stderr__):
            module = importlib.import_module(f"sanet_tfjs.{module_name}")
            try:
                result = getattr(module, function_name)(**args, **options)
            except PipelineError as exc:
                return TaskFailed(str(exc))
            print(f"   {module_name} done in {time.monotonic() - started:.1f} s", flush=True)
        # Returned dicts become the task's saved values (doit's `values` in uptodate checks).
        values = result if isinstance(result, dict) else {}
        return {**values, OUTPUTS_KEY: record_outputs(outputs, cache)}

    run.__name__ = function_name
    return (run, [], {})


def _outputs_intact(outputs: list[str], cache: HashCache) -> Callable:
    def check(task: Any, values: dict) -> bool:
        recorded = values.get(OUTPUTS_KEY)
        if not isinstance(recorded, dict):
            return False  # never built (or built before sums were recorded)
        changed = changed_outputs(outputs, recorded, cache)
        if changed:
            listed = ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
            print(
                f"{task.name}: {len(changed)} output file(s) changed on disk since the build"
                f" ({listed}); rebuilding",
                file=sys.stderr,
            )
        return not changed

    check.__name__ = "outputs_intact"
    return check


def hash_cache_checker(cache: HashCache) -> type:
    """doit's file_dep checker, with sums from `cache`: like doit's default (unchanged mtime:
    unchanged; other size: changed; else compare sums), but a file restored with a new mtime
    is read once, not on every run until its stage runs again."""

    class HashCacheChecker(MD5Checker):
        def check_modified(self, file_path: str, file_stat: os.stat_result, state: Any) -> bool:
            mtime, size, digest = state
            if file_stat.st_mtime == mtime:
                return False
            return file_stat.st_size != size or cache.sha256(file_path) != digest

        def get_state(self, dep: str, current_state: Any) -> Any:
            mtime = os.path.getmtime(dep)
            if current_state and current_state[0] == mtime:
                return None
            return mtime, os.path.getsize(dep), cache.sha256(dep)

    return HashCacheChecker
