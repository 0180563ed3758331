"""The doit graph end to end (tiny width): builds, then does nothing until an input changes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sanet_tfjs.architecture import CHECKPOINT_FILES
from tests.conftest import (
    ALL_STAGES,
    AUDIT,
    ROOT,
    TINY,
    ScratchPipeline,
    artifact_sums,
    executed_tasks,
    flip_a_byte,
    reference_copy,
    repo_copy,
    run_doit,
    run_doit_output,
    run_doit_process,
    tiny_repo,
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
        "heavy = [m for m in ('torch', 'tensorflow', 'onnx') if m in sys.modules];"
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
    assert set(lines) == {*ALL_STAGES, "release", "bench"}  # those two only when asked for
    assert all(len(doc) > 20 for doc in lines.values())


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
    assert set(listed) == {*ALL_STAGES, "release", "bench"}


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


def invalidation_matrix(copy: Path, pipeline: ScratchPipeline) -> list[tuple]:
    """(what is edited, the edit, the exact set of stages that must rerun), applied in order.

    A stage reruns when a pipeline.yaml key it reads, a module its action can import, a
    script it runs, a tool version or a product of a stage it reads changes, or when its own
    outputs were changed on disk. What follows it reruns only if the bytes it reads changed
    (the stages are deterministic): a stage reads another's products through their sums
    (artifacts/sums/), and the report stage reads the parity reports, which carry timings.
    """
    artifacts = pipeline.artifacts

    def setting(section: str, key: str, value: object):
        def edit() -> None:
            pipeline.config[section][key] = value
            pipeline.save()

        return edit

    def code(module: str):
        return lambda: append_line(copy / f"src/sanet_tfjs/{module}.py", "# x")

    def lock_bump() -> None:
        lock = copy / "requirements.lock"
        lock.write_text(lock.read_text().replace("tensorflowjs==4.22.0", "tensorflowjs==4.22.1"))

    # tfjs rewrites its report (timings) on every run: the report stage follows it.
    model_users = {"fixtures", "patch", "onnx", "tf", "tfstyle", "tfjs", "smoke", "report"}
    return [
        ("nothing", lambda: None, set()),
        ("fetch setting", setting("fetch", "read_timeout_s", 30), {"fetch"}),
        ("fetch mirror (where bytes come from)", setting("fetch", "mirror", str(copy)), set()),
        ("onnx setting", setting("onnx", "constant_folding", True), CONVERSION | {"smoke"}),
        (
            "image tolerance (patch, onnx, tf)",
            setting("parity", "image_max_abs", 2e-4),
            {"patch", "onnx", "tf", "report"},
        ),
        (
            "result tolerance (tfstyle, tfjs)",
            setting("parity", "result_max_abs", 2 / 255),
            {"tfstyle", "tfjs", "report"},
        ),
        (
            "tfjs setting",
            setting("tfjs", "shard_bytes", 65536),
            {"tfjs", "report", "page", "smoke"},
        ),
        ("smoke setting", setting("smoke", "max_abs", 3 / 255), {"smoke"}),
        ("bench setting (bench runs only when asked for)", setting("bench", "runs", 5), set()),
        ("patch code (imported by every stage that loads the model)", code("patch"), model_users),
        ("TFStyle code", code("tfstyle"), {"tfstyle"}),
        ("TFStyle stage code", code("stages/tfstyle"), {"tfstyle"}),
        ("model code", code("model"), model_users),
        ("report code", code("stages/report"), {"report"}),
        ("page source", lambda: append_line(copy / "web/style.css", "p {}"), {"page", "smoke"}),
        (
            "a script the Node check imports",
            lambda: append_line(copy / "js/disk_model.mjs", "// x"),
            {"tfjs", "report"},
        ),
        ("tool version in the lock", lock_bump, {"tfjs", "report"}),
        (
            "checkpoint edited on disk",
            lambda: flip_a_byte(artifacts / "checkpoints" / "decoder_iter_500000.pth"),
            {"fetch"},
        ),
        (
            "ONNX file edited on disk",
            lambda: flip_a_byte(artifacts / "onnx/encoder.onnx"),
            {"onnx"},
        ),
        (
            "SavedModel edited on disk",
            lambda: flip_a_byte(artifacts / "tf/encoder/saved_model.pb"),
            {"tf"},
        ),
        (
            "TFStyle variables edited on disk",
            lambda: flip_a_byte(artifacts / "tfstyle/saved_model/variables/variables.index"),
            {"tfstyle"},
        ),
        (
            "weight shard edited on disk",
            lambda: flip_a_byte(sorted((artifacts / "tfjs").glob("*.bin"))[0]),
            {"tfjs", "report"},
        ),
        ("site file removed", lambda: (artifacts / "site" / "style.css").unlink(), {"page"}),
        (
            "file added to the site",
            lambda: (artifacts / "site" / "stray.js").write_text("alert(1)"),
            {"page"},
        ),
        (
            "sums file edited on disk",
            lambda: append_line(artifacts / "sums" / "tf.sha256", "x"),
            {"tf"},
        ),
        ("fixture seed (new checkpoint bytes)", setting("fixture", "seed", 2020), set(ALL_STAGES)),
        ("model width", setting("model", "width_divisor", 16), set(ALL_STAGES)),
    ]


def stages_out_of_date(copy: Path, config_path: Path) -> set[str]:
    """The stages `doit list --status` marks to run (R), release and bench aside."""
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
    assert code["tf"] >= {"tf_convert.py", "onnx_tf_compat.py", "parity.py", "model.py"}
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


def test_each_input_reruns_exactly_the_stages_it_determines(tmp_path, reference):
    # The reference build ran under the read audit: no stage touched a file it did not declare.
    assert set(reference.executed) == set(ALL_STAGES)
    copy, pipeline = reference_copy(tmp_path / "repo")
    assert run_doit(copy, pipeline.config_path) == []  # a copy elsewhere is up to date
    summary = json.loads((pipeline.artifacts / "patched" / "patch.json").read_text())
    assert summary["width_divisor"] == 8
    assert summary["dropped_vgg_tensors"][0] == "45.weight"
    lock = json.loads((copy / "checkpoints.lock.json").read_text())
    assert set(lock["checkpoints"]["fixture:seed=2019:width_divisor=8"]) == set(CHECKPOINT_FILES)

    wrong = check_each_module_marks_exactly_its_importers(copy, pipeline.config_path)
    assert run_doit(copy, pipeline.config_path) == []  # the edits were undone

    for label, edit, expected in invalidation_matrix(copy, pipeline):
        edit()
        before = artifact_sums(pipeline.artifacts)
        executed = set(run_doit(copy, pipeline.config_path))
        if executed != expected:
            after = artifact_sums(pipeline.artifacts)
            changed = sorted(
                f for f in before.keys() | after.keys() if before.get(f) != after.get(f)
            )
            wrong.append(
                f"{label}: reran {sorted(executed)}, expected {sorted(expected)}; "
                f"files that changed: {changed}"
            )
    if wrong:
        pytest.fail("\n".join(wrong))
    assert not (pipeline.artifacts / "site" / "stray.js").exists()
    shards = json.loads((pipeline.artifacts / "tfjs" / "model.json").read_text())
    assert len(shards["weightsManifest"][0]["paths"]) > 1  # the 64 KiB shard setting held

    # The audit catches the next undeclared input: the report stage made to read a file it
    # does not declare fails, naming it, and runs again once the read is gone.
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
    [(TINY, 311_571), pytest.param(1, 19_860_611, marks=pytest.mark.full_width)],
)
@pytest.mark.slow
def test_clean_builds_are_identical_and_a_restored_cache_is_trusted(
    tmp_path, width_divisor, parameters, request
):
    builds = []
    for name in ("a", "deeper/b"):  # two clones at different paths, each built from nothing
        if name == "a" and width_divisor == TINY:  # the session's reference build is one
            copy, pipeline = reference_copy(tmp_path / name)
            executed = request.getfixturevalue("reference").executed + run_doit(
                copy, pipeline.config_path, "release", env=RELEASE_EPOCH
            )
        else:
            copy, pipeline = tiny_repo(tmp_path / name, width_divisor)
            executed = run_doit(copy, pipeline.config_path, "release", env=RELEASE_EPOCH)
        assert set(executed) == {*ALL_STAGES, "release"}
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
