"""The doit graph end to end (tiny width): builds, then does nothing until an input changes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sanet_tfjs.architecture import CHECKPOINT_FILES
from tasks.graph import ON_DEMAND
from tests.conftest import (
    ALL_STAGES,
    AUDIT,
    FIDELITY,
    ROOT,
    TINY,
    ReferenceBuild,
    ScratchPipeline,
    artifact_sums,
    differences,
    executed_tasks,
    flip_a_byte,
    repo_copy,
    run_doit,
    run_doit_output,
    run_doit_process,
    tiny_repo,
    truncate,
)


def test_edited_lock_is_enforced(scratch_pipeline):
    assert scratch_pipeline.doit("fetch").returncode == 0
    lock_path = scratch_pipeline.folder / "checkpoints.lock.json"
    lock = json.loads(lock_path.read_text())
    entry = lock["checkpoints"]["fixture:seed=2019:width_divisor=8"]["decoder_iter_500000.pth"]
    entry["sha256"] = "f" * 64
    lock_path.write_text(json.dumps(lock))
    result = scratch_pipeline.doit("fetch")
    assert result.returncode != 0
    assert "wrong sha256" in result.stderr + result.stdout
    assert "f" * 64 in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_loading_the_graph_imports_no_heavy_library():
    probe = (
        "import sys, runpy; runpy.run_path('dodo.py');"
        "heavy = [m for m in ('torch', 'tensorflow', 'onnx', 's3fs', 'botocore', 'aiohttp',"
        " 'cryptography') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_doit_list_describes_every_stage(scratch_pipeline):
    result = scratch_pipeline.doit("list")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(maxsplit=1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {*ALL_STAGES, *ON_DEMAND}
    assert all(len(doc) > 20 for doc in lines.values())


@pytest.mark.parametrize("auto", [False, True], ids=["no-auto-bundle", "auto-bundles"])
def test_the_plan_is_built_only_for_the_stages_that_apply_it(scratch_pipeline, monkeypatch, auto):
    from tasks.graph import load_graph

    scratch_pipeline.config["tfjs"]["quantization"] = "auto" if auto else "float16"
    scratch_pipeline.config["bench"]["quantizations"] = ["float16", "auto"] if auto else ["uint8"]
    scratch_pipeline.save()
    monkeypatch.setenv("SANET_PIPELINE", str(scratch_pipeline.config_path))
    graph = load_graph()
    assert ("plan" in graph["DOIT_CONFIG"]["default_tasks"]) == auto  # the page's default bundle
    for reader in ("tfjs", "bench"):
        task = graph[f"task_{reader}"]()
        reads_plan = any(dep.endswith("sums/plan.sha256") for dep in task["file_dep"])
        assert reads_plan == auto, reader
        assert "tfjs.fidelity" not in task["meta"]["reads"]  # only through the plan
    assert "tfjs.fidelity" in graph["task_plan"]()["meta"]["reads"]


def test_pipeline_yaml_and_readme_name_the_stages_that_read_each_section(monkeypatch):
    # Each stage declares the keys it reads once (tasks/); the comments must say the same.
    from tasks.graph import load_graph

    monkeypatch.setenv("SANET_PIPELINE", str(ROOT / "pipeline.yaml"))
    readers: dict[str, set[str]] = {}
    for name, creator in load_graph().items():
        if name.startswith("task_"):
            for key in creator()["meta"]["reads"]:
                readers.setdefault(key.split(".")[0], set()).add(name.removeprefix("task_"))
    text = (ROOT / "pipeline.yaml").read_text()
    stated = {
        section: {stage.strip() for stage in re.split(r"[;(.]", stages)[0].split(",")}
        for stages, section in re.findall(r"# Read by: ([^\n]*)\n(?:#[^\n]*\n)*(\w+):", text)
    }
    assert stated == readers
    # The README's stage table too (sections per stage).
    table = re.findall(r"^\| `(\w+)`[^|]*\|([^|]*)\|", (ROOT / "README.md").read_text(), re.M)
    listed = {stage: set(re.findall(r"`(\w+)`", cell)) for stage, cell in table}
    assert listed == {
        stage: {section for section, stages in readers.items() if stage in stages}
        for stage in listed
    }
    assert set(listed) == {*ALL_STAGES, *ON_DEMAND}


def test_upstream_profile_has_no_fixture_stage(scratch_pipeline):
    scratch_pipeline.config["fetch"]["profile"] = "upstream"
    scratch_pipeline.save()
    result = scratch_pipeline.doit("list")
    assert result.returncode == 0, result.stderr
    assert "fixtures" not in result.stdout and "fetch" in result.stdout


def test_upstream_profile_fetches_from_a_mirror(scratch_pipeline, tmp_path):
    from sanet_tfjs.fixtures import write_fixture_checkpoints
    from sanet_tfjs.server import serve_directory

    mirror = tmp_path / "mirror"
    write_fixture_checkpoints(mirror, seed=3, width_divisor=8)
    scratch_pipeline.config["fetch"]["profile"] = "upstream"
    scratch_pipeline.save()
    with serve_directory(mirror) as server:
        result = scratch_pipeline.doit("fetch", "--mirror", server.url, "patch")  # not onnx, tf
    assert result.returncode == 0, result.stderr
    assert set(executed_tasks(result)) == {"fetch", "patch"}
    lock = json.loads((scratch_pipeline.folder / "checkpoints.lock.json").read_text())
    assert set(lock["checkpoints"]) == {"upstream"}


def cache_key_of(copy: Path, config_path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "sanet_tfjs.cachekey", str(config_path)],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_cache_key_covers_the_configured_lock_file(scratch_pipeline):
    scratch_pipeline.config["fetch"]["lock_file"] = "pins.json"
    scratch_pipeline.save()
    pins = scratch_pipeline.folder / "pins.json"
    pins.write_text('{"checkpoints": {}}')
    before = cache_key_of(ROOT, scratch_pipeline.config_path)
    pins.write_text('{"checkpoints": {"upstream": {}}}')
    assert cache_key_of(ROOT, scratch_pipeline.config_path) != before


def append_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


RELEASE_EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
CONVERSION = {"onnx", "tf", "tfstyle", "tfjs", "report", "page"}


@dataclass(frozen=True)
class InputEdit:
    """One row of the invalidation matrix: an edit to a built copy, and the exact set of stages
    the next `doit` must rerun."""

    label: str
    edit: Callable[[Path, ScratchPipeline], None]
    expected: frozenset[str]
    check: Callable[[Path, ScratchPipeline], None] | None = None  # what else must hold after
    # An artifact tampered with: after the rebuild every artifact must be the untampered
    # build's bytes again (timing reports aside), and no file it did not write is left.
    tampered: bool = False

    @property
    def id(self) -> str:
        """The test id: the label's words before any parenthesis, e.g. `patch-code`."""
        return re.sub(r"\W+", "-", self.label.split(" (")[0]).strip("-")

    @staticmethod
    def setting(section: str, key: str, value: object) -> Callable:
        def edit(copy: Path, pipeline: ScratchPipeline) -> None:
            pipeline.config[section][key] = str(copy) if value is COPY else value
            pipeline.save()

        return edit

    @staticmethod
    def code(module: str) -> Callable:
        return lambda copy, _: append_line(copy / f"src/sanet_tfjs/{module}.py", "# x")

    @staticmethod
    def flip(artifact: str) -> Callable:
        return lambda _, pipeline: flip_a_byte(next(pipeline.artifacts.glob(artifact)))


COPY = object()  # a setting's value: the copy's own path


def lock_bump(copy: Path, _: ScratchPipeline) -> None:
    lock = copy / "requirements.lock"
    lock.write_text(lock.read_text().replace("tensorflowjs==4.22.0", "tensorflowjs==4.22.1"))


def shards_split(_: Path, pipeline: ScratchPipeline) -> None:
    shards = json.loads((pipeline.artifacts / "tfjs" / "model.json").read_text())
    assert len(shards["weightsManifest"][0]["paths"]) > 1  # the 64 KiB shard setting held


# Each reruns and writes the same bytes: nothing after them follows (the report stage reads
# tfjs's parity report, whose timings are in a report of their own).
MODEL_USERS = {"fixtures", "patch", "onnx", "tf", "tfstyle", "plan", "tfjs", "smoke"}


def release_built(copy: Path, pipeline: ScratchPipeline) -> None:
    """Build the release (on demand only) in the copy, so that a row can show it stays built."""
    assert run_doit(copy, pipeline.config_path, "release", env=RELEASE_EPOCH) == ["release"]


def release_up_to_date(copy: Path, pipeline: ScratchPipeline) -> None:
    assert run_doit(copy, pipeline.config_path, "release", env=RELEASE_EPOCH) == []


# A stage reruns when a pipeline.yaml key it reads, a module its action can import, a script it
# runs, a tool version or a product of a stage it reads changes, or when its own outputs were
# changed on disk. What follows it reruns only if the bytes it reads changed (the stages are
# deterministic, and their products carry no timings): a stage reads another's products through
# their sums (artifacts/sums/), the report stage the parity reports. Each row starts from its
# own copy of the reference build.
INVALIDATION_MATRIX = [
    InputEdit(label, edit, frozenset(expected), *check)
    for label, edit, expected, *check in [
        ("nothing", lambda *_: None, set()),
        ("fetch setting", InputEdit.setting("fetch", "read_timeout_s", 30), {"fetch"}),
        ("fetch mirror (where bytes come from)", InputEdit.setting("fetch", "mirror", COPY), set()),
        (
            "onnx setting",
            InputEdit.setting("onnx", "constant_folding", True),
            CONVERSION | {"smoke"},
        ),
        (
            "image tolerance (patch, onnx, tf)",
            InputEdit.setting("parity", "image_max_abs", 2e-4),
            {"patch", "onnx", "tf", "report"},
        ),
        (
            "result tolerance (tfstyle, tfjs)",
            InputEdit.setting("parity", "result_max_abs", 2 / 255),
            {"tfstyle", "tfjs", "report"},
        ),
        (
            "tfjs setting",
            InputEdit.setting("tfjs", "shard_bytes", 65536),
            {"tfjs", "report", "page", "smoke"},
            shards_split,
        ),
        ("smoke setting", InputEdit.setting("smoke", "max_abs", 3 / 255), {"smoke"}),
        (
            "bench setting (bench runs only when asked for)",
            InputEdit.setting("bench", "runs", 5),
            set(),
        ),
        (
            "quantization target (the plan's, and the smoke's check of the small bundle; the "
            "same dtypes kept: the same bundles, the page does not follow)",
            InputEdit.setting("tfjs", "fidelity", {**FIDELITY, "psnr_db": 35.5}),
            {"plan", "tfjs", "report", "smoke"},
        ),
        (
            "no small bundle (tfjs.quantization none: the exact one alone, no plan)",
            InputEdit.setting("tfjs", "quantization", "none"),
            {"tfjs", "report", "page", "smoke"},
        ),
        # One row per kind of edit: which stages each module marks is checked for every module
        # by test_each_module_marks_exactly_the_stages_that_import_it, without building.
        (
            "patch code (imported by every stage that loads the model)",
            InputEdit.code("patch"),
            MODEL_USERS,
        ),
        ("TFStyle code", InputEdit.code("tfstyle"), {"tfstyle"}),
        ("report code", InputEdit.code("stages/report"), {"report"}),
        (
            "tfjs rerun, same bytes (the report does not follow: timings apart)",
            InputEdit.code("stages/tfjs"),
            {"tfjs"},
        ),
        (
            "smoke rerun (the release does not follow: timings apart)",
            lambda copy, pipeline: (
                release_built(copy, pipeline),
                append_line(copy / "src/sanet_tfjs/stages/smoke.py", "# x"),
            ),
            {"smoke"},
            release_up_to_date,
        ),
        (
            "one section's schema (only the stages that import it)",
            InputEdit.code("settings/fetch"),
            {"fetch"},
        ),
        (
            "the sections' shared schema (the stages that import a section; plan: through the "
            "graph rewrites' Quantization)",
            InputEdit.code("settings/base"),
            {"fetch", "plan", "tfjs"},
        ),
        (
            "page source",
            lambda copy, _: append_line(copy / "web/style.css", "p {}"),
            {"page", "smoke"},
        ),
        (
            "a script the Node check imports",
            lambda copy, _: append_line(copy / "js/disk_model.mjs", "// x"),
            {"tfjs"},
        ),
        ("tool version in the lock", lock_bump, {"plan", "tfjs"}),
        (
            "fixture seed (new checkpoint bytes)",
            InputEdit.setting("fixture", "seed", 2020),
            set(ALL_STAGES),
        ),
        ("model width", InputEdit.setting("model", "width_divisor", 16), set(ALL_STAGES)),
    ]
]
# Artifacts tampered with on disk: the hardening table's "tampered artifacts" are these rows.
TAMPERED_ARTIFACT_ROWS = [
    InputEdit(label, edit, frozenset(expected), tampered=True)
    for label, edit, expected in [
        (
            "checkpoint edited on disk",
            InputEdit.flip("checkpoints/decoder_iter_500000.pth"),
            {"fetch"},
        ),
        (
            "ONNX file edited on disk",
            InputEdit.flip("onnx/encoder.onnx"),
            {"onnx"},
        ),
        (
            "SavedModel edited on disk",
            InputEdit.flip("tf/encoder/saved_model.pb"),
            {"tf"},
        ),
        (
            "TFStyle variables edited on disk",
            InputEdit.flip("tfstyle/saved_model/variables/variables.index"),
            {"tfstyle"},
        ),
        (
            "TFStyle variables truncated on disk",
            lambda _, pipeline: truncate(
                pipeline.artifacts / "tfstyle/saved_model/variables/variables.data-00000-of-00001"
            ),
            {"tfstyle"},
        ),
        (
            "weight shard edited on disk",
            InputEdit.flip("tfjs/*.bin"),
            {"tfjs"},
        ),
        (
            "small bundle's shard edited on disk",
            InputEdit.flip("tfjs_small/*.bin"),
            {"tfjs"},
        ),
        (
            "plan's uint8 codes edited on disk",
            InputEdit.flip("plan/uint8.npz"),
            {"plan"},
        ),
        (
            "site file removed",
            lambda _, pipeline: (pipeline.artifacts / "site" / "style.css").unlink(),
            {"page"},
        ),
        (
            "file added to the site",
            lambda _, pipeline: (pipeline.artifacts / "site" / "stray.js").write_text("alert(1)"),
            {"page"},
        ),
        (
            "sums file edited on disk",
            lambda _, pipeline: append_line(pipeline.artifacts / "sums" / "tf.sha256", "x"),
            {"tf"},
        ),
    ]
]
INVALIDATION_MATRIX += TAMPERED_ARTIFACT_ROWS


def stages_out_of_date(copy: Path, config_path: Path) -> set[str]:
    """The stages `doit list --status` marks to run (R), those built on demand aside."""
    output = run_doit_output(copy, config_path, "list", "--status")
    marked = {line.split()[1] for line in output.splitlines() if line.startswith("R ")}
    return marked & set(ALL_STAGES)


def stage_code(copy: Path, config_path: Path) -> dict[str, set[str]]:
    """Each stage's code inputs as the graph derives them (`doit info` lists file_dep)."""
    code = {}
    for stage in ALL_STAGES:
        output = run_doit_output(copy, config_path, "info", stage)
        code[stage] = {
            line.split("src/sanet_tfjs/")[1].strip()
            for line in output.splitlines()
            if "src/sanet_tfjs/" in line and line.strip().startswith("- ")
        }
    return code


def check_each_module_marks_exactly_its_importers(copy: Path, config_path: Path) -> list[str]:
    """Edit every module of the package in turn: exactly the stages whose derived import
    closure holds it are out of date. Returns what went wrong."""
    code = stage_code(copy, config_path)
    assert code["tf"] >= {"tf_convert.py", "formats/onnx_tf_compat.py", "parity.py", "model.py"}
    wrong = []
    package = copy / "src" / "sanet_tfjs"
    for module in sorted(package.rglob("*.py")):
        original = module.read_bytes()
        module.write_bytes(original + b"# edited\n")
        try:
            marked = stages_out_of_date(copy, config_path)
        finally:
            module.write_bytes(original)
        name = module.relative_to(package).as_posix()
        expected = {stage for stage, files in code.items() if name in files}
        if marked != expected:
            wrong.append(f"{name}: marks {sorted(marked)}, imported by {sorted(expected)}")
    return wrong


def test_a_copy_of_the_reference_build_is_up_to_date(tmp_path, reference):
    # The reference build ran under the read audit: no stage touched a file it did not declare.
    assert set(reference.executed) == set(ALL_STAGES)
    copy, pipeline = reference.copy_to(tmp_path / "repo")
    assert run_doit(copy, pipeline.config_path) == []  # a copy elsewhere is up to date
    summary = json.loads((pipeline.artifacts / "patched" / "patch.json").read_text())
    assert summary["width_divisor"] == 8
    assert summary["dropped_vgg_tensors"][0] == "45.weight"
    lock = json.loads((copy / "checkpoints.lock.json").read_text())
    assert set(lock["checkpoints"]["fixture:seed=2019:width_divisor=8"]) == set(CHECKPOINT_FILES)


def rerun_after_edit(row: InputEdit, reference: ReferenceBuild, folder: Path) -> None:
    """Apply `row`'s edit to a copy of the reference build at `folder` and run doit: exactly
    the row's stages rerun, and its check holds. Raises AssertionError otherwise."""
    copy, pipeline = reference.copy_to(folder)
    row.edit(copy, pipeline)
    before = artifact_sums(pipeline.artifacts)
    executed = set(run_doit(copy, pipeline.config_path))
    if executed != row.expected:
        after = artifact_sums(pipeline.artifacts)
        changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
        raise AssertionError(
            f"{row.label}: reran {sorted(executed)}, expected {sorted(row.expected)}; "
            f"files that changed: {changed}"
        )
    if row.tampered:
        wrong = differences(reference.sums, artifact_sums(pipeline.artifacts))
        assert not wrong, f"{row.label}: differ from the untampered build after rebuilding: {wrong}"
    if row.check:
        row.check(copy, pipeline)


@pytest.mark.parametrize("row", INVALIDATION_MATRIX, ids=lambda row: row.id)
def test_each_input_reruns_exactly_the_stages_it_determines(tmp_path, reference, row):
    rerun_after_edit(row, reference, tmp_path / "repo")


def test_each_module_marks_exactly_the_stages_that_import_it(tmp_path, reference):
    copy, pipeline = reference.copy_to(tmp_path / "repo")
    wrong = check_each_module_marks_exactly_its_importers(copy, pipeline.config_path)
    assert wrong == []
    assert run_doit(copy, pipeline.config_path) == []  # the edits were undone


def test_the_audit_fails_a_stage_that_reads_an_undeclared_file(tmp_path, reference):
    # The report stage made to read a file it does not declare fails, naming it, and runs
    # again once the read is gone.
    copy, pipeline = reference.copy_to(tmp_path / "repo")
    report_code = copy / "src/sanet_tfjs/stages/report.py"
    original = report_code.read_text()
    report_code.write_text(
        original + "from ..repo import ROOT  # noqa: E402\n"
        'UNDECLARED = (ROOT / "requirements.lock").read_text()\n'
    )
    failed = run_doit_process(copy, pipeline.config_path, "report", env=AUDIT)
    assert failed.returncode != 0
    assert (
        "report touched 1 file(s) it does not declare: requirements.lock"
        in failed.stdout + failed.stderr
    )
    report_code.write_text(original)
    assert run_doit(copy, pipeline.config_path, "report", env=AUDIT) == ["report"]


@pytest.mark.parametrize(
    ("width_divisor", "parameters"),
    # parameters after the patch stage's folds (before: 328,223 and 20,911,247)
    [
        (TINY, 311_571),
        pytest.param(1, 19_860_611, marks=[pytest.mark.full_width, pytest.mark.full_build]),
    ],
)
@pytest.mark.slow
def test_clean_builds_are_identical_and_a_restored_cache_is_trusted(
    tmp_path, width_divisor, parameters, request
):
    builds = []
    for name in ("a", "deeper/b"):  # two clones at different paths, each built from nothing
        if name == "a" and width_divisor == TINY:  # the session's reference build is one
            reference = request.getfixturevalue("reference")
            copy, pipeline = reference.copy_to(tmp_path / name)
            executed = reference.executed + run_doit(
                copy, pipeline.config_path, "release", env=RELEASE_EPOCH
            )
        else:
            copy, pipeline = tiny_repo(tmp_path / name, width_divisor)
            if width_divisor != TINY:
                # The exact bundle only: the small one's plan took about 100 s of each
                # full-width build here (half the test); two clean tiny builds show its bytes
                # are reproducible.
                pipeline.config["tfjs"]["quantization"] = "none"
                pipeline.save()
            executed = run_doit(copy, pipeline.config_path, "release", env=RELEASE_EPOCH)
        planned = width_divisor == TINY
        assert set(executed) == {*ALL_STAGES, "release"} - (set() if planned else {"plan"})
        builds.append((copy, pipeline))
    (first, pipeline), (_, other) = builds

    report = json.loads((pipeline.artifacts / "parity.json").read_text())
    assert report["passed"] and set(report["stages"]) == {"patch", "onnx", "tf", "tfstyle", "tfjs"}
    smoke = json.loads((pipeline.artifacts / "smoke" / "smoke.json").read_text())
    assert smoke["passed"] and smoke["backends"]["wasm"]["runs"][0]["max_abs"] <= 2 / 255
    assert smoke["backends"]["wasm"]["cross_origin_isolated"] is True  # served with COOP/COEP
    assert smoke["backends"]["wasm"]["threads"] >= 1
    size = report["stages"]["tfjs"]["size"]
    assert size["float32_parameters"] == 4 * parameters  # the parameters used, as upstream
    assert size["weights"] <= 1.02 * size["float32_parameters"]

    # The same inputs give the same bytes: every file of the site, and the release archive.
    sites = [
        json.loads((p.artifacts / "site" / "build.json").read_text()) for p in (pipeline, other)
    ]
    assert sites[0]["files"] == sites[1]["files"]
    archives = [
        json.loads((p.artifacts / "release" / "manifest.json").read_text())["archive"]
        for p in (pipeline, other)
    ]
    assert archives[0] == archives[1]
    assert archives[0]["sha256"] in (pipeline.artifacts / "release" / "SHA256SUMS").read_text()
    print(f"width 1/{width_divisor}: both release archives have sha256 {archives[0]['sha256']}")
    assert run_doit(first, pipeline.config_path) == []

    # A third clone elsewhere, with artifacts/ (doit's database inside) and the committed lock
    # restored with new modification times, as a CI cache does: nothing to do.
    third = repo_copy(tmp_path / "elsewhere" / "c")
    for name in ("pipeline.yaml", "checkpoints.lock.json"):
        shutil.copy(first / name, third / name)
    shutil.copytree(pipeline.artifacts, third / "artifacts", copy_function=shutil.copyfile)
    assert cache_key_of(third, third / "pipeline.yaml") == cache_key_of(first, pipeline.config_path)
    assert run_doit(third, third / "pipeline.yaml") == []
    assert run_doit(third, third / "pipeline.yaml", "release", env=RELEASE_EPOCH) == []

    # The key moves with any input that changes the artifacts.
    config = third / "pipeline.yaml"
    config.write_text(config.read_text().replace("seed: 2019", "seed: 2020"))
    assert cache_key_of(third, config) != cache_key_of(first, pipeline.config_path)
