"""The GitHub Actions workflows: valid for actionlint, and the release one ships what
`doit release` and the page stage write (it cannot run on the development machines)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from sanet_tfjs.release import ARCHIVE
from tasks.layout import OUTPUTS
from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINT = ["node", str(ROOT / "js" / "lint_workflows.mjs")]


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_actionlint_finds_no_problem_in_the_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"pipeline.yml", "release.yml"}
    done = _lint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_property }}\n"
    )
    done = _lint(broken)
    assert done.returncode == 1
    assert "no_such_property" in done.stdout


def test_the_release_workflow_ships_the_release_files_and_the_site() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    steps = {step.get("uses", step.get("run")): step for step in workflow["jobs"]["build"]["steps"]}
    release = f"artifacts/{OUTPUTS['release'].folder}"
    attached = steps["softprops/action-gh-release@v2"]["with"]["files"].split()
    assert attached == [f"{release}/{ARCHIVE}", f"{release}/manifest.json", f"{release}/SHA256SUMS"]
    assert steps["actions/upload-pages-artifact@v3"]["with"]["path"] == (
        f"artifacts/{OUTPUTS['page'].folder}"
    )
    assert "bash scripts/pipeline.sh release" in steps
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert [step["uses"] for step in deploy["steps"]] == ["actions/deploy-pages@v4"]
