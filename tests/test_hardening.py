"""Every network fault and bad input of tests/hardening.py has its designed outcome, and
docs/hardening.md is the table those scenarios produce."""

from __future__ import annotations

from tests.hardening import TABLE_PATH, render_table, run_all


def test_every_scenario_has_its_designed_outcome_and_the_table_is_current():
    rows = run_all()
    wrong = [f"{s.area}: {s.fault}: {result}" for s, _, result in rows if result != "as designed"]
    assert wrong == []
    assert all(runs > 0 for _, runs, _ in rows)
    assert TABLE_PATH.read_text() == render_table(rows), (
        "docs/hardening.md is stale: run PYTHONPATH=src .venv/bin/python -m tests.hardening --write"
    )
