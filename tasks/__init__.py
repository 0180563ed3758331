"""The doit wiring: one module per stage, and the one factory they all use.

Each stage module defines `task_<stage>(pipeline)` returning one doit task made by `stage()`,
which is the stage's whole declaration: the function it runs, the pipeline.yaml keys it reads,
the stages whose products it reads, the other files it reads, and the tools whose versions
matter. From that one declaration come the action's arguments, the file_dep (the sums file of
each input stage, the import closure of its code, the scripts it runs), the `uptodate` check on
the keys' values, its outputs and targets (tasks/layout.py), and what `doit info` and the
tests list about it. Nothing here imports torch or tensorflow: stage code is imported inside
the action, so `doit list` stays instant. The same declaration keys the shared build cache
(docs/cache.md): an out-of-date stage is looked up before it runs and uploaded after.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.action import TaskFailed
from doit.dependency import MD5Checker
from doit.tools import config_changed

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "sanet_tfjs"
CONFIG_ENV = "SANET_PIPELINE"
CACHE_URL_ENV = "SANET_CACHE_URL"  # overrides cache.url ("" turns the cache off)
CACHE_WRITE_ENV = "SANET_CACHE_WRITE"  # overrides cache.write ("1" or "0")
CACHE_ENDPOINT_ENV = "SANET_CACHE_ENDPOINT"  # overrides cache.endpoint_url (S3 only)
OUTPUTS_KEY = "outputs"  # the saved value holding the sums of what a stage wrote

if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from sanet_tfjs import audit  # noqa: E402 - needs the path above
from sanet_tfjs.cache.key import ActionInputs  # noqa: E402
from sanet_tfjs.config import PipelineConfig, load_config  # noqa: E402
from sanet_tfjs.errors import PipelineError  # noqa: E402
from sanet_tfjs.files import atomic_output  # noqa: E402
from sanet_tfjs.integrity import (  # noqa: E402
    HashCache,
    changed_outputs,
    output_files,
    record_outputs,
)
from sanet_tfjs.logs import quiet_native_logs  # noqa: E402
from sanet_tfjs.repo import pinned  # noqa: E402
from sanet_tfjs.scratch import build_scratch  # noqa: E402

from .closure import python_closure, script_closure  # noqa: E402
from .layout import OUTPUTS, sums_file  # noqa: E402

if TYPE_CHECKING:
    from sanet_tfjs.cache.stage import CacheSettings, StageCache


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

    def folder(self, stage: str) -> str:
        """The folder `stage` writes (tasks/layout.py), handed to it and its readers."""
        folder = OUTPUTS[stage].folder
        if folder is None:
            raise KeyError(f"stage {stage!r} writes no folder of its own")
        return self.path(folder)

    def reports(self, stage: str) -> list[str]:
        return [self.path(report) for report in OUTPUTS[stage].reports]

    def products(self, stage: str) -> list[str]:
        """What `stage` writes for other stages to read (tasks/layout.py)."""
        return [self.path(product) for product in OUTPUTS[stage].products]

    def beside_config(self, name: str) -> str:
        return _relative(self.config_path.parent / name)

    @cached_property
    def hash_cache(self) -> HashCache:
        return HashCache(self.artifacts / ".hash-cache.json")

    @cached_property
    def cache_settings(self) -> CacheSettings | None:
        """The remote build cache's settings (sanet_tfjs.cache.stage.CacheSettings), or None
        when no cache is configured: pipeline.yaml's `cache:`, then the environment."""
        from sanet_tfjs.cache.stage import CacheSettings
        from sanet_tfjs.cache.store import StoreSettings

        section = self.config.cache
        url = os.environ.get(CACHE_URL_ENV, section.url)
        if not url:
            return None
        write = os.environ.get(CACHE_WRITE_ENV, "1" if section.write else "0").lower()
        endpoint = os.environ.get(CACHE_ENDPOINT_ENV) or section.endpoint_url
        store = StoreSettings(
            url, endpoint, section.connect_timeout_s, section.read_timeout_s, section.retries
        )
        return CacheSettings(
            store, write in ("1", "true", "yes"), section.public_key, section.signing_key_env
        )

    def setting(self, key: str) -> Any:
        """The value of the pipeline.yaml key "section.key"."""
        section, _, name = key.partition(".")
        values = self.config.section(section)
        if name not in values:
            raise KeyError(f"pipeline.yaml has no key {key!r}")
        return values[name]


def toolchain(*packages: str) -> dict[str, str]:
    """The pinned versions of the packages a stage's output depends on: a lock-file change
    to any of them reruns the stage (and only such a change does)."""
    return pinned(*packages)


def each_key(section: str) -> tuple[str, ...]:
    """Every key of a pipeline.yaml section, for a stage that reads them all."""
    return tuple(
        f"{section}.{name}" for name in PipelineConfig.model_fields[section].annotation.model_fields
    )


def _repository_files(paths: Iterable[str]) -> list[str]:
    """Scripts and pages a stage runs (relative to the repository), with what their ES-module
    imports reach; a folder stands for its files."""
    files: set[Path] = set()
    for name in paths:
        path = ROOT / name
        entries = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for entry in entries:
            files.update(script_closure(entry) if entry.suffix in (".mjs", ".js") else [entry])
    return sorted(_relative(path) for path in files)


def stage(
    pipeline: Pipeline,
    name: str,
    *,
    doc: str,
    run: str,
    args: dict[str, Any] | None = None,
    reads: Iterable[str] = (),
    unwatched: Iterable[str] = (),
    inputs: Iterable[str] = (),
    files: Iterable[str] = (),
    scripts: Iterable[str] = (),
    tools: Iterable[str] = (),
    watch: dict[str, Any] | None = None,
    checks: Iterable[tuple[Callable, Iterable[str]]] = (),
    always: bool = False,
    params: Iterable[dict] = (),
) -> dict:
    """The doit task of stage `name`: `run` ("module:function" in sanet_tfjs) called with
    `out_dir` (its folder, if it has one), `args` and the values of the pipeline.yaml keys in
    `reads` (each under its last name: "model.width_divisor" -> width_divisor=...).

    It reruns when a key it reads changes (except those in `unwatched`, which change where
    things come from, not what is built), when a product of a stage in `inputs` changed, when
    one of `files` (paths relative to the repository) or `scripts` (the JavaScript and pages it
    runs; ES-module imports followed) changed, when a module its action can import changed
    (derived: tasks/closure.py), when a tool in `tools` changed version in a lock file, when
    `watch`'s values or its own arguments changed, when one of its own `checks` says so (each
    an uptodate callable and the files it reads, which may not exist yet and which the stage
    may write), or when one of its outputs was changed on disk (recorded sums,
    sanet_tfjs.integrity). `always`: it runs every time it is asked for.
    """
    reads, unwatched, inputs = tuple(reads), set(unwatched), tuple(inputs)
    settings = {key.rpartition(".")[2]: pipeline.setting(key) for key in reads}
    own_folder = {"out_dir": pipeline.folder(name)} if OUTPUTS[name].folder else {}
    arguments = {**own_folder, **(args or {}), **settings}
    module = run.split(":")[0]
    code = [_relative(path) for path in python_closure(module, SRC)]
    sums = pipeline.path(sums_file(name))
    outputs = [pipeline.path(output) for output in OUTPUTS[name].all]
    file_dep = sorted(
        {*(pipeline.path(sums_file(stage)) for stage in inputs), *files, *code}
    ) + _repository_files(scripts)
    watched = {
        "run": run,
        "arguments": {k: v for k, v in arguments.items() if not _unwatched(k, reads, unwatched)},
        "toolchain": toolchain(*tools),
        **(watch or {}),
    }
    checks = list(checks)
    checked_files = [file for _, files in checks for file in files]
    declared_inputs = [*file_dep, *(p for stage in inputs for p in pipeline.products(stage))]
    return {
        "doc": doc,
        "actions": [
            _action(
                name,
                run,
                arguments,
                outputs=outputs,
                products=pipeline.products(name),
                sums=sums,
                declared_inputs=declared_inputs,
                checked_files=checked_files,
                pipeline=pipeline,
                # what the remote cache keys it on: what decides above whether it is up to date
                cache_inputs=None
                if always
                else ActionInputs(name, watched, tuple(file_dep), tuple(checked_files)),
            )
        ],
        "params": list(params),
        "file_dep": file_dep,
        "targets": [sums, *(p for p in outputs if Path(p).suffix)],
        "uptodate": [
            False if always else config_changed(watched),
            *(check for check, _ in checks),
            _outputs_intact([*outputs, sums], pipeline.hash_cache),
        ],
        "meta": {"reads": reads, "inputs": inputs, "code": code},
        "clean": True,
    }


def _unwatched(argument: str, reads: tuple[str, ...], unwatched: set[str]) -> bool:
    return any(key in unwatched and key.rpartition(".")[2] == argument for key in reads)


def _write_sums(products: list[str], sums: str, pipeline: Pipeline) -> None:
    # Paths relative to artifacts/ (`cd artifacts && sha256sum -c sums/<stage>.sha256`): the
    # same bytes in every clone, wherever it lies.
    digests = record_outputs(products, pipeline.hash_cache)
    lines = [
        f"{digest}  {os.path.relpath(ROOT / file, pipeline.artifacts)}\n"
        for file, digest in digests.items()
    ]
    with atomic_output(ROOT / sums) as staged:
        staged.write_text("".join(lines))


def _action(
    stage_name: str,
    target: str,
    args: dict[str, Any],
    *,
    outputs: list[str],
    products: list[str],
    sums: str,
    declared_inputs: list[str],
    checked_files: list[str],
    pipeline: Pipeline,
    cache_inputs: ActionInputs | None = None,
) -> tuple:
    # The module is imported only when the action runs (torch stays out of `doit list`), and a
    # PipelineError is reported as its plain message, without a traceback.
    module_name, function_name = target.split(":")
    cache = pipeline.hash_cache
    owned = [pipeline.folder(stage_name)] if OUTPUTS[stage_name].folder else []

    def build(options: dict[str, Any]) -> Any:
        # Stages write to the real streams: doit's stand-ins (no capture at verbosity 2) would
        # be bound by TensorFlow's log handler and break logging's shutdown at exit.
        started = time.monotonic()
        auditing = os.environ.get(audit.AUDIT_ENV) == "1"
        with (
            redirect_stdout(sys.__stdout__),
            redirect_stderr(sys.__stderr__),
            quiet_native_logs(),
            build_scratch(),  # its temporary files: removed even if the build is killed
        ):
            with audit.recording() if auditing else nullcontext() as recorded:
                try:
                    module = importlib.import_module(f"sanet_tfjs.{module_name}")
                    result = getattr(module, function_name)(**args, **options)
                except PipelineError as exc:
                    return TaskFailed(str(exc))
            if auditing:
                found = audit.undeclared(
                    recorded,
                    repository=ROOT,
                    artifacts=pipeline.artifacts,
                    inputs=[ROOT / path for path in declared_inputs],
                    # its own folder, and a checked file it may write (fetch's lock)
                    outputs=[ROOT / path for path in [*outputs, *owned, *checked_files]],
                )
                if found:
                    return TaskFailed(
                        f"{stage_name} touched {len(found)} file(s) it does not declare: "
                        + ", ".join(found)
                        + f". Declare them in tasks/{stage_name}.py (inputs, files, scripts) or"
                        " stop reading them: a change to them would not rerun the stage."
                    )
            print(f"   {stage_name} done in {time.monotonic() - started:.1f} s", flush=True)
        return result

    def run(**options: Any) -> Any:  # doit passes the task's command-line params here
        # The remote cache, if configured: only an out-of-date stage gets here, so an up-to-date
        # one never asks it. A hit stands for the build; a miss builds, then uploads.
        remote = _remote_cache(pipeline, stage_name, cache_inputs)
        fetched = remote.fetch() if remote else None
        result = fetched if fetched is not None else build(options)
        if isinstance(result, TaskFailed):
            return result
        _write_sums(products, sums, pipeline)
        # Returned dicts become the task's saved values (doit's `values` in uptodate checks).
        values = result if isinstance(result, dict) else {}
        if remote and fetched is None:
            remote.upload(output_files(outputs), values)
        return {**values, OUTPUTS_KEY: record_outputs([*outputs, sums], cache)}

    run.__name__ = function_name
    return (run, [], {})


def _remote_cache(
    pipeline: Pipeline, stage_name: str, inputs: ActionInputs | None
) -> StageCache | None:
    """The stage's view of the remote cache (docs/cache.md), or None when there is none."""
    if inputs is None or pipeline.cache_settings is None:
        return None
    from sanet_tfjs.cache.key import Places
    from sanet_tfjs.cache.stage import StageCache

    places = Places(ROOT, pipeline.artifacts, pipeline.config_path.parent)
    hashes = pipeline.hash_cache
    return StageCache(
        pipeline.cache_settings,
        stage_name,
        inputs,
        places,
        OUTPUTS[stage_name].all,
        lambda path: hashes.sha256(os.path.relpath(path, ROOT)),
    )


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
