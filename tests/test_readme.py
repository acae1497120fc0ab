"""README.md gives exactly two commands for a fresh machine, and CI runs both as written."""

from __future__ import annotations

import re

from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text("utf-8")
    sections = {}
    for title in ("Quick start", "Tests"):
        match = re.search(rf"## {title}.*?```bash\n(.*?)```", text, re.S)
        assert match, f"README.md has no bash block under '## {title}'"
        sections[title] = match.group(1).strip()
    return list(sections.values())


def test_readme_has_one_install_and_run_command_each():
    quick_start, tests = readme_commands()
    assert "\n" not in quick_start and "\n" not in tests
    assert (
        "pip install" in quick_start
        and "bayling-data build recipes/pivot_zh_en.yaml" in quick_start
    )
    assert "pip install" in tests and "pytest" in tests


def test_ci_runs_the_readme_commands_verbatim():
    ci = (REPO / ".ci" / "run").read_text("utf-8").splitlines()
    for command in readme_commands():
        assert command in ci
