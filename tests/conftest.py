"""Shared test fixtures: tiny-width models, test images, and a scratch pipeline to run doit in."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from filelock import FileLock

from sanet_tfjs.architecture import VGG_FILE, used_encoder_keys
from sanet_tfjs.files import sha256_file
from sanet_tfjs.fixtures import fixture_state_dicts
from sanet_tfjs.folds import folded_model
from sanet_tfjs.images import load_rgb, sample_photo_path, synthetic_painting, to_nchw
from sanet_tfjs.model import PatchedSANet
from sanet_tfjs.patch import load_patched_model
from sanet_tfjs.repo import ROOT
from sanet_tfjs.stages.onnx import run_onnx_stage
from sanet_tfjs.stages.page import run_page_stage
from sanet_tfjs.stages.plan import run_plan_stage
from sanet_tfjs.stages.tf import run_tf_stage
from sanet_tfjs.stages.tfjs import run_tfjs_stage
from sanet_tfjs.stages.tfstyle import run_tfstyle_stage

TINY = 8  # width divisor of the tiny models: same topology, 1/8 of the channels
ONE_LEVEL = 1 / 255
FIDELITY = {"psnr_db": 35.0, "ssim": 0.99, "resolutions": [64, 96]}  # tfjs.fidelity, at tiny sizes
TOLERANCES = {"feature_rel_l2": 1e-5, "image_max_abs": 1e-4}
DOIT_TIMEOUT_S = 900
ALL_STAGES = [
    "fixtures",
    "fetch",
    "patch",
    "onnx",
    "tf",
    "tfstyle",
    "plan",
    "tfjs",
    "report",
    "page",
    "smoke",
]  # fmt: skip  (build order)


# Tests that need these are slow (a conversion chain, a browser, a pipeline build): the fast
# tier (`-m "not slow"`) leaves them out. Marked here, by what they use, so a new test that
# needs one is marked too.
SLOW_FIXTURES = {"tiny_build", "reference"}


# Each test's seconds in a recorded two-worker run (`bash scripts/test.sh --record-durations`):
# the longest start first, so that no worker is left with a long test while the other idles at
# the end (the order only changes the suite's time, never a verdict).
DURATIONS_FILE = Path(__file__).with_name("durations.json")
LONG_TEST_S = 5.0  # shorter tests keep their file order, and their module fixtures


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"record the seconds of each test run in {DURATIONS_FILE.name} (the others keep "
        "theirs): the order of the next runs",
    )


def recorded_durations() -> dict[str, float]:
    """{test id: seconds} of the last recorded run."""
    return json.loads(DURATIONS_FILE.read_text())["seconds"] if DURATIONS_FILE.exists() else {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames) or item.get_closest_marker("full_width"):
            item.add_marker(pytest.mark.slow)
    recorded = recorded_durations()
    long_first = {
        item.nodeid: -recorded[item.nodeid]
        for item in items
        if recorded.get(item.nodeid, 0.0) >= LONG_TEST_S
    }
    items.sort(key=lambda item: long_first.get(item.nodeid, 0.0))  # stable: the rest in order


_SECONDS: dict[str, float] = {}  # nodeid -> setup + call + teardown seconds, in this run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    # The controller (or a run without xdist) sees every worker's reports.
    if session.config.getoption("record_durations") and not hasattr(session.config, "workerinput"):
        # Merged: a run of some tests (-k, -m, --lf) keeps the others' seconds.
        recorded = recorded_durations()
        recorded.update({nodeid: round(s) for nodeid, s in _SECONDS.items()})
        kept = {nodeid: s for nodeid, s in sorted(recorded.items()) if s >= 1}
        # The day goes with the seconds: docs/development.md's table names it (figures.py).
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        DURATIONS_FILE.write_text(json.dumps({"recorded": today, "seconds": kept}, indent=0) + "\n")


@pytest.fixture(scope="session")
def reference() -> ReferenceBuild:
    """The session's reference build (see `reference_build`)."""
    return reference_build()


@pytest.fixture(scope="session")
def tiny_states() -> dict[str, dict[str, torch.Tensor]]:
    return fixture_state_dicts(seed=7, width_divisor=TINY)


@pytest.fixture(scope="session")
def full_states() -> dict[str, dict[str, torch.Tensor]]:
    return fixture_state_dicts(seed=2019, width_divisor=1)


def photo(height: int, width: int) -> torch.Tensor:
    """The sample photograph resized to height x width, as a 1x3xHxW tensor in [0, 1]."""
    return to_nchw(load_rgb(sample_photo_path(), (width, height)))


def painting(seed: int, height: int, width: int) -> torch.Tensor:
    return to_nchw(synthetic_painting(seed, height, width))


class ScratchPipeline:
    """A pipeline.yaml in a temporary folder (tiny width), built with the repository's dodo.py."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config_path = folder / "pipeline.yaml"
        self.config = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
        self.config["model"]["width_divisor"] = TINY
        self.config["fetch"]["backoff_s"] = 0.01
        self.save()

    @classmethod
    def of(cls, folder: Path) -> ScratchPipeline:
        """The scratch pipeline a folder already holds (a copy of one), as it is."""
        pipeline = cls.__new__(cls)
        pipeline.folder = folder
        pipeline.config_path = folder / "pipeline.yaml"
        pipeline.config = yaml.safe_load(pipeline.config_path.read_text())
        return pipeline

    @property
    def artifacts(self) -> Path:
        return self.folder / self.config["artifacts_dir"]

    def save(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def doit(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """doit in the repository itself, on this pipeline.yaml (its artifacts beside it)."""
        return run_doit_process(ROOT, self.config_path, *args, env=env)


def executed_tasks(result: subprocess.CompletedProcess) -> list[str]:
    """Names of the tasks a doit run executed (doit prints '.  name'; '-- name' when skipped).
    Compare them as sets: doit may order independent stages either way."""
    return executed_in(result.stdout)


def executed_in(stdout: str) -> list[str]:
    return [line[3:].strip() for line in stdout.splitlines() if line.startswith(".  ")]


def repo_copy(dest: Path) -> Path:
    """A copy of the repository's tracked inputs (node_modules linked), as a clone would be."""
    dest.mkdir(parents=True)
    for name in ("dodo.py", "pipeline.yaml", "package-lock.json", "requirements.lock"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("tasks", "src", "web", "js"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "node_modules").symlink_to(ROOT / "node_modules")
    return dest


def tiny_repo(dest: Path, width_divisor: int = TINY) -> tuple[Path, ScratchPipeline]:
    """A repository copy set up for a quick build (smoke: wasm at 64 px only; the small
    bundle's fidelity at 64 and 96 px)."""
    copy = repo_copy(dest)
    pipeline = ScratchPipeline(copy)
    pipeline.config["model"]["width_divisor"] = width_divisor
    pipeline.config["smoke"]["backends"] = {"wasm": [64]}
    pipeline.config["tfjs"]["fidelity"] = FIDELITY  # the small bundle's plan and check: tiny
    pipeline.save()
    return copy, pipeline


AUDIT = {"SANET_AUDIT": "1"}  # stages fail on any file they read but do not declare


@dataclass(frozen=True)
class ReferenceBuild:
    copy: Path  # the repository copy, artifacts/ inside
    pipeline: ScratchPipeline
    executed: list[str]  # the stages the build ran
    sums: dict[str, str]  # artifact_sums of the build
    cache: Path  # a file:// build cache holding every stage it built (ac/, cas/)

    def copy_to(self, dest: Path) -> tuple[Path, ScratchPipeline]:
        """A copy of the build's repository at `dest` (new path, new modification times, as
        a restored CI cache): up to date, and the caller's to change."""
        shutil.copytree(self.copy, dest, symlinks=True)
        return dest, ScratchPipeline.of(dest)


# pytest-xdist's workers (`-n 2`) share what is built once per run: the folder above their own
# temporary folders, which pytest removes with its old runs. None outside a worker.
WORKERS_SHARED_DIR: Path | None = None


# One thread per library in the suite's processes and in the builds they start: the workers
# already keep every core busy, and TensorFlow's and PyTorch's pools sized for the whole
# machine, spinning against the other workers' (OpenMP threads spin before they sleep), cost
# more than they gave: 817 s of pytest on two workers, 728 s with these. A value set by hand
# wins. Set here, before the workers start, so that they and every build inherit them.
ONE_THREAD_EACH = {
    "OMP_NUM_THREADS": "1",  # PyTorch (OpenMP)
    "TF_NUM_INTRAOP_THREADS": "1",  # TensorFlow, inside an op
    "TF_NUM_INTEROP_THREADS": "2",  # TensorFlow, ops side by side
}


def pytest_configure(config: pytest.Config) -> None:
    global WORKERS_SHARED_DIR
    if hasattr(config, "workerinput"):  # an xdist worker: the controller chose its basetemp
        WORKERS_SHARED_DIR = Path(config.option.basetemp).parent
    for name, value in ONE_THREAD_EACH.items():
        os.environ.setdefault(name, value)
    if os.environ["OMP_NUM_THREADS"].isdigit():  # (a list such as "4,2" is OpenMP's to read)
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # imported before this ran


def built_once(name: str, build: Callable[[Path], None]) -> Path:
    """The folder `build(folder)` filled, built once per test run: by the first xdist worker
    that asks, under a file lock (the others wait, then reuse it), or by this process alone
    outside xdist. Never change what is in it."""
    if WORKERS_SHARED_DIR is None:
        folder = Path(tempfile.mkdtemp(prefix=f"sanet-{name}-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        build(folder)
        return folder
    folder = WORKERS_SHARED_DIR / name
    built = Path(f"{folder}.built")
    with FileLock(f"{folder}.lock"):
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died halfway
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


def _build_reference(folder: Path) -> None:
    copy, pipeline = tiny_repo(folder / "repo")
    # It also fills a file:// build cache with every stage it builds (tests/test_cache.py's
    # entries): a build that uploads must be the same build as one that does not.
    cache = {"SANET_CACHE_URL": (folder / "cache").as_uri(), "SANET_CACHE_WRITE": "1"}
    executed = run_doit(copy, pipeline.config_path, env={**AUDIT, **cache})
    (folder / "reference.json").write_text(json.dumps({"executed": executed}))


@functools.cache
def reference_build() -> ReferenceBuild:
    """One tiny build from nothing, under the read audit, made once per test run for every
    test (and hardening scenario) that starts from a built pipeline. Never change it: take a
    copy with `copy_to`."""
    folder = built_once("reference", _build_reference)
    record = json.loads((folder / "reference.json").read_text())
    pipeline = ScratchPipeline.of(folder / "repo")
    sums = artifact_sums(pipeline.artifacts)
    return ReferenceBuild(folder / "repo", pipeline, record["executed"], sums, folder / "cache")


def doit_command(
    config_path: Path, *args: str, env: dict | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run doit on `config_path` (cwd: the copy)."""
    environment = {**os.environ, "SANET_PIPELINE": str(config_path), **(env or {})}
    environment.pop("SANET_MIRROR", None)  # a developer's own mirror must not leak in
    for name in ("SANET_CACHE_URL", "SANET_CACHE_WRITE", "SANET_CACHE_ENDPOINT"):
        if name not in (env or {}):
            environment.pop(name, None)  # nor their remote build cache
    return [sys.executable, "-m", "doit", *args], environment


def run_doit_process(
    cwd: Path, config_path: Path, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """doit run to its end in `cwd` (a repository or a copy) on `config_path`."""
    command, environment = doit_command(config_path, *args, env=env)
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=DOIT_TIMEOUT_S
    )


def run_doit_output(copy: Path, config_path: Path, *args: str, env: dict | None = None) -> str:
    """Run doit in a repository copy; fail on an error; return what it printed."""
    result = run_doit_process(copy, config_path, *args, env=env)
    assert result.returncode == 0, (
        f"doit exited {result.returncode}\n--- stdout:\n{result.stdout[-3000:]}\n--- stderr:\n"
        f"{result.stderr[-3000:]}"
    )
    return result.stdout


def run_doit(copy: Path, config_path: Path, *args: str, env: dict | None = None) -> list[str]:
    """Run doit in a repository copy; fail on an error; return the tasks it executed."""
    return executed_in(run_doit_output(copy, config_path, *args, env=env))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def artifact_sums(artifacts: Path) -> dict[str, str]:
    """sha256 of every file under artifacts/ (doit's own bookkeeping files aside)."""
    return {
        str(path.relative_to(artifacts)): sha256_file(path)
        for path in artifacts.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    }


# Timing reports and screenshots (tasks/layout.py): the only files two builds of the same
# inputs write differently. No stage reads them.
TIMED_REPORTS = ("tfjs_timings.json", "smoke/timings.json", "smoke/screenshots/")


def differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Files whose bytes differ between two builds' `artifact_sums`, timing reports aside."""
    return sorted(
        name for name in {*expected, *actual}
        if expected.get(name) != actual.get(name) and not name.startswith(TIMED_REPORTS)
    )  # fmt: skip


@pytest.fixture
def scratch_pipeline(tmp_path: Path) -> ScratchPipeline:
    return ScratchPipeline(tmp_path)


@pytest.fixture(scope="session")
def patched_dir(tmp_path_factory, tiny_states):
    """The tiny model as the patch stage writes it: folded (the TF.js graph rewrites expect
    the folded transform)."""
    folder = tmp_path_factory.mktemp("patched")
    model = PatchedSANet(TINY)
    vgg = tiny_states[VGG_FILE]
    parts = {
        "encoder": {key: vgg[key] for key in used_encoder_keys(TINY)},
        "transform": tiny_states["transformer_iter_500000.pth"],
        "decoder": tiny_states["decoder_iter_500000.pth"],
    }
    for part, state in parts.items():
        getattr(model, part).load_state_dict(state)
    folded = folded_model(model, TINY)
    for part in parts:
        state = {
            key: value.contiguous() for key, value in getattr(folded, part).state_dict().items()
        }
        torch.save(state, folder / f"{part}.pt")
    return folder


@pytest.fixture(scope="session")
def tiny_build(patched_dir):
    """The chain onnx -> tf -> tfstyle -> tfjs at tiny width, built once per test run."""
    return built_once("serving", functools.partial(_build_chain, patched_dir=patched_dir))


def _build_chain(root: Path, patched_dir: Path) -> None:
    run_onnx_stage(str(patched_dir), str(root / "onnx"), TINY, 10, False, **TOLERANCES)
    run_tf_stage(str(root / "onnx"), str(patched_dir), str(root / "tf"), TINY, **TOLERANCES)
    run_tfstyle_stage(str(root / "tf"), str(patched_dir), str(root / "tfstyle"), TINY, ONE_LEVEL)
    run_tfjs_stage(
        str(root / "tfstyle"), str(patched_dir), str(root / "tfjs"), str(root / "tfjs.json"),
        str(root / "tfjs_timings.json"), TINY, 4 * 1024 * 1024, "none", True, True, 1.02, ONE_LEVEL,
        None,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_plan(patched_dir) -> Path:
    """The plan stage's folder for the tiny model and FIDELITY, made once per test run (what
    the stage printed: progress.txt beside it)."""
    return built_once("plan", functools.partial(_build_plan, patched_dir=patched_dir)) / "plan"


def _build_plan(root: Path, patched_dir: Path) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_plan_stage(str(patched_dir), str(root / "plan"), TINY, FIDELITY)
    (root / "progress.txt").write_text(printed.getvalue())


@pytest.fixture(scope="session")
def tiny_model(patched_dir):
    """The tiny patched PyTorch model: the reference the converted models are compared with."""
    return load_patched_model(patched_dir, TINY)


@pytest.fixture(scope="session")
def tiny_small_bundle(tiny_build, tiny_plan, tiny_model) -> Path:
    """The tiny model's budgeted bundle (the plan's dtypes, FIDELITY), made once per test run
    from the converter's own bundle, as the tfjs stage makes it."""
    return (
        built_once(
            "small-bundle",
            functools.partial(
                _build_small_bundle, tiny_build=tiny_build, plan=tiny_plan, model=tiny_model
            ),
        )
        / "model"
    )


def _build_small_bundle(root: Path, tiny_build: Path, plan: Path, model) -> None:
    from sanet_tfjs.quantize import load_plan
    from sanet_tfjs.tfjs_convert import finish_bundle, run_converter
    from sanet_tfjs.winograd import winograd_choices

    run_converter(tiny_build / "tfstyle" / "saved_model", root / "raw")
    finish_bundle(
        root / "raw", root / "model", 4 * 1024 * 1024, "auto", True, load_plan(plan, model),
        winograd_choices(TINY),
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_site(tiny_build, tiny_small_bundle, tiny_plan, tmp_path_factory):
    """The web page (artifacts/site/ as the page stage writes it) around the tiny model: the
    exact bundle and the budgeted one, the page's default."""
    folder = tmp_path_factory.mktemp("site") / "site"
    chosen = json.loads((tiny_plan / "plan.json").read_text())["chosen"]
    fidelity = {
        "psnr_db": chosen["psnr_db"],
        "ssim": chosen["ssim"],
        "resolutions": FIDELITY["resolutions"],
        "measured_with": "PyTorch, the plan stage",
    }
    run_page_stage(
        "web", str(tiny_build / "tfjs"), str(folder), "fixture", str(tiny_small_bundle), fidelity
    )
    return folder
