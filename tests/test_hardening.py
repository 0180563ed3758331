"""Every network fault and bad input of tests/hardening.py has its designed outcome (one test
per scenario), and docs/hardening.md is the table those scenarios produce. The tampered
artifacts are rows of tests/test_pipeline.py's invalidation matrix, which makes those runs:
here they are only counted."""

from __future__ import annotations

import pytest

from tests.hardening import (
    TABLE_PATH,
    WRITE_COMMAND,
    all_scenarios,
    render_table,
    run_scenario,
    runs_in_table,
    scenario_ids,
    written_on,
)

SCENARIOS = all_scenarios()
STALE = f"docs/hardening.md is stale: run {WRITE_COMMAND}"


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, marks=[pytest.mark.slow] if s.slow and not s.runs_elsewhere else [])
        for s in SCENARIOS
    ],
    ids=scenario_ids(SCENARIOS),
)
def test_scenario_has_its_designed_outcome(scenario, tmp_path):
    if scenario.runs_elsewhere:  # other tests of the suite make these runs: only count them
        runs = scenario.runs_elsewhere()
    else:
        runs, result = run_scenario(scenario, tmp_path)
        assert result == "as designed"
    assert runs > 0
    assert runs == runs_in_table(TABLE_PATH.read_text()).get((scenario.area, scenario.fault)), STALE


def test_the_table_lists_every_scenario_as_designed():
    """The table's rows are the scenarios, in order, with the run counts their tests check."""
    runs = runs_in_table(TABLE_PATH.read_text())
    rows = [(s, runs.get((s.area, s.fault), 0), "as designed") for s in SCENARIOS]
    table = TABLE_PATH.read_text()
    assert written_on(table), STALE
    assert table == render_table(rows, written_on(table)), STALE
