"""The README is a front page a newcomer reads in five minutes, every docs page is reachable from
it, and every table of figures in them names the command and the day that measured it and is
what its report gives (src/sanet_tfjs/figures.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sanet_tfjs import figures
from sanet_tfjs.repo import ROOT

README = ROOT / "README.md"
README_MAX_LINES = 200


def tables(text: str) -> list[tuple[int, list[str]]]:
    """Each markdown table of `text`: its first line's index and its lines."""
    lines, found, start = text.splitlines(), [], None
    for index, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = index
        elif not line.startswith("|") and start is not None:
            found.append((start, lines[start:index]))
            start = None
    return found


def line_before(text: str, index: int) -> str:
    """The last non-blank line before line `index`."""
    return next((line for line in reversed(text.splitlines()[:index]) if line.strip()), "")


def test_the_readme_is_short_and_begins_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    first_block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert [line.split()[:2] for line in first_block] == [
        ["bash", "scripts/pipeline.sh"],
        ["bash", "scripts/test.sh"],
    ]
    assert lines.index("```bash") < 15


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    text = README.read_text()
    linked = {Path(link.split("#")[0]) for link in re.findall(r"\]\((docs/[^)]+)\)", text)}
    assert all((ROOT / link).is_file() for link in linked), linked
    pages = {path.relative_to(ROOT) for path in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"
    for page in pages:  # links between docs pages
        for link in re.findall(r"\]\(([\w.-]+\.md)(?:#[^)]*)?\)", (ROOT / page).read_text()):
            assert (ROOT / "docs" / link).is_file(), f"{page} links a missing {link}"


@pytest.mark.parametrize("page", figures.pages(), ids=lambda page: page.name)
def test_every_table_of_figures_names_its_source(page):
    text = page.read_text()
    for start, lines in tables(text):
        cells = [cell.strip() for line in lines[2:] for cell in line.strip("|").split("|")]
        if not any(re.match(r"\d", cell) for cell in cells):
            continue  # no figures in it (stages, files; a setting's value is code: `5`)
        source = line_before(text, start)
        assert figures.SOURCE_LINE.match(source), (
            f"{page.name}: the table at line {start + 1} ({lines[0][:60]}...) has figures but "
            f"no source line before it (a command and a date): generate it from its report "
            f"(src/sanet_tfjs/figures.py)"
        )


@pytest.mark.parametrize("page", figures.pages(), ids=lambda page: page.name)
def test_generated_tables_are_what_their_reports_give(page):
    assert figures.regenerate(page, check=True) == [], f"stale: run {figures.REGENERATE}"


def test_a_stale_table_is_found_and_regenerated(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "x\n\n<!-- figures: test-durations -->\n| made | by hand |\n<!-- /figures -->\n"
    )
    assert figures.regenerate(page, check=True) == ["test-durations"]
    assert "by hand" in page.read_text()  # --check changes nothing
    assert figures.regenerate(page) == ["test-durations"]
    recorded = json.loads(figures.DURATIONS.read_text())
    assert f"on {recorded['recorded']}" in page.read_text()
    assert figures.regenerate(page, check=True) == []
    page.write_text("<!-- figures: no-such-table -->\n<!-- /figures -->\n")
    with pytest.raises(KeyError, match="unknown figure table 'no-such-table'"):
        figures.regenerate(page)
