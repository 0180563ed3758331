"""The doit graph end to end (tiny width): builds, then does nothing until an input changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DOIT_TIMEOUT_S, ROOT, ScratchPipeline, executed_tasks

ALL_STAGES = [
    "fixtures", "fetch", "patch", "onnx", "tf", "tfstyle", "tfjs", "report", "page", "smoke",
]  # fmt: skip


def test_build_then_noop_then_only_what_changed(scratch_pipeline):
    first = scratch_pipeline.doit()
    assert first.returncode == 0, first.stderr
    assert set(executed_tasks(first)) == set(ALL_STAGES)
    patched = scratch_pipeline.artifacts / "patched"
    summary = json.loads((patched / "patch.json").read_text())
    assert summary["width_divisor"] == 8
    assert summary["dropped_vgg_tensors"][0] == "45.weight"
    lock = json.loads((scratch_pipeline.folder / "checkpoints.lock.json").read_text())
    assert set(lock["checkpoints"]["fixture:seed=2019:width_divisor=8"]) == {
        "vgg_normalised.pth",
        "decoder_iter_500000.pth",
        "transformer_iter_500000.pth",
    }

    second = scratch_pipeline.doit()
    assert second.returncode == 0, second.stderr
    assert set(executed_tasks(second)) == set()

    # A fetch setting reruns fetch alone: the checkpoints it finds match the lock, so the
    # files do not change and patch stays up to date.
    scratch_pipeline.config["fetch"]["read_timeout_s"] = 30
    scratch_pipeline.save()
    assert set(executed_tasks(scratch_pipeline.doit())) == {"fetch"}

    # The mirror only says where bytes come from: no rebuild.
    scratch_pipeline.config["fetch"]["mirror"] = str(scratch_pipeline.folder)
    scratch_pipeline.save()
    assert set(executed_tasks(scratch_pipeline.doit())) == set()

    # The tfjs section reruns the tfjs stage and what follows it, nothing before.
    scratch_pipeline.config["tfjs"]["shard_bytes"] = 65536
    scratch_pipeline.save()
    assert set(executed_tasks(scratch_pipeline.doit())) == {"tfjs", "report", "page", "smoke"}
    manifest = json.loads((scratch_pipeline.artifacts / "tfjs" / "model.json").read_text())
    assert len(manifest["weightsManifest"][0]["paths"]) > 1  # now in 64 KiB shards

    # The model width changes everything downstream of it.
    scratch_pipeline.config["model"]["width_divisor"] = 16
    scratch_pipeline.save()
    assert set(executed_tasks(scratch_pipeline.doit())) == set(ALL_STAGES)


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
    assert set(lines) == {*ALL_STAGES, "release"}  # release runs only when asked for
    assert all(len(doc) > 20 for doc in lines.values())


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


@pytest.mark.full_width
def test_full_width_build_end_to_end(scratch_pipeline):
    scratch_pipeline.config["model"]["width_divisor"] = 1
    scratch_pipeline.config["smoke"]["backends"] = {"wasm": [256]}  # software WebGL is slow
    scratch_pipeline.save()
    result = scratch_pipeline.doit()
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(executed_tasks(result)) == set(ALL_STAGES)
    report = json.loads((scratch_pipeline.artifacts / "parity.json").read_text())
    assert report["passed"] and set(report["stages"]) == {"onnx", "tf", "tfstyle", "tfjs"}
    smoke = json.loads((scratch_pipeline.artifacts / "smoke" / "smoke.json").read_text())
    assert smoke["passed"] and smoke["backends"]["wasm"]["runs"][0]["max_abs"] <= 2 / 255
    size = report["stages"]["tfjs"]["size"]
    assert size["float32_parameters"] == 4 * 20_911_247  # the parameters used, as upstream
    assert size["weights"] <= 1.02 * size["float32_parameters"]
    assert set(executed_tasks(scratch_pipeline.doit())) == set()


def repo_copy(dest: Path) -> Path:
    """A copy of the repository's tracked inputs (node_modules linked), as a clone would be."""
    dest.mkdir(parents=True)
    for name in ("dodo.py", "pipeline.yaml", "package-lock.json", "requirements.lock"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("tasks", "src", "web", "js"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "node_modules").symlink_to(ROOT / "node_modules")
    return dest


def tiny_repo(dest: Path) -> tuple[Path, ScratchPipeline]:
    """A repository copy set up for a quick tiny-width build (smoke: wasm at 64 px only)."""
    copy = repo_copy(dest)
    pipeline = ScratchPipeline(copy)
    pipeline.config["smoke"]["backends"] = {"wasm": [64]}
    pipeline.save()
    return copy, pipeline


def run_doit(copy: Path, config_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "doit"],
        cwd=copy,
        env={**os.environ, "SANET_PIPELINE": str(config_path)},
        capture_output=True,
        text=True,
        timeout=DOIT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return executed_tasks(result)


def cache_key_of(copy: Path, config_path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "sanet_tfjs.cachekey", str(config_path)],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_page_sources_and_tool_versions_rerun_what_they_built(tmp_path):
    copy, pipeline = tiny_repo(tmp_path / "repo")
    assert set(run_doit(copy, pipeline.config_path)) == set(ALL_STAGES)

    style = copy / "web" / "style.css"
    style.write_text(style.read_text() + "\nbody { background: #fafafa; }\n")
    assert set(run_doit(copy, pipeline.config_path)) == {"page", "smoke"}
    assert "#fafafa" in (pipeline.artifacts / "site" / "style.css").read_text()

    # A toolchain change in the lock file reruns the stages that tool built. (The same tool
    # in fact gives the same bytes, so the site is unchanged and the smoke test stays valid.)
    lock = copy / "requirements.lock"
    lock.write_text(lock.read_text().replace("tensorflowjs==4.22.0", "tensorflowjs==4.22.1"))
    assert set(run_doit(copy, pipeline.config_path)) == {"tfjs", "report", "page"}


def test_restored_cache_in_another_clone_executes_nothing(tmp_path):
    first, pipeline = tiny_repo(tmp_path / "first")
    assert set(run_doit(first, pipeline.config_path)) == set(ALL_STAGES)

    # Another clone at another path; the cache restores artifacts/ (with doit's database)
    # and the committed lock file with new modification times, as a CI cache does.
    second = repo_copy(tmp_path / "elsewhere" / "second")
    for name in ("pipeline.yaml", "checkpoints.lock.json"):
        shutil.copy(first / name, second / name)
    shutil.copytree(pipeline.artifacts, second / "artifacts", copy_function=shutil.copyfile)
    assert cache_key_of(first, first / "pipeline.yaml") == cache_key_of(
        second, second / "pipeline.yaml"
    )
    assert run_doit(second, second / "pipeline.yaml") == []

    # The key moves with any input that changes the artifacts.
    config = second / "pipeline.yaml"
    config.write_text(config.read_text().replace("seed: 2019", "seed: 2020"))
    assert cache_key_of(second, config) != cache_key_of(first, first / "pipeline.yaml")


def test_two_clean_builds_give_the_same_release(tmp_path):
    archives, sites = [], []
    for name in ("a", "deeper/b"):
        copy, pipeline = tiny_repo(tmp_path / name)
        environment = {**os.environ, "SANET_PIPELINE": str(pipeline.config_path)}
        environment["SOURCE_DATE_EPOCH"] = "1700000000"
        result = subprocess.run(
            [sys.executable, "-m", "doit", "release"],
            cwd=copy,
            env=environment,
            capture_output=True,
            text=True,
            timeout=DOIT_TIMEOUT_S,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        release = pipeline.artifacts / "release"
        archives.append(json.loads((release / "manifest.json").read_text())["archive"])
        sites.append(json.loads((pipeline.artifacts / "site" / "build.json").read_text()))
        sums = (release / "SHA256SUMS").read_text()
        assert archives[-1]["sha256"] in sums
    differing = [f for f in sites[0]["files"] if sites[0]["files"][f] != sites[1]["files"].get(f)]
    assert differing == []
    assert archives[0] == archives[1]
