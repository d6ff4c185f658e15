"""The README is the front door: every setting is documented there, with its default."""

from __future__ import annotations

from entrypoints.settings import REPO_ROOT, SETTINGS


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        row = next(
            (
                line
                for line in readme.splitlines()
                if line.startswith(f"| `INSPILOT_{setting.name}`")
            ),
            None,
        )
        assert row is not None, f"INSPILOT_{setting.name} is not documented"
        if setting.default and setting.name != "PROMPTS_DIR":
            assert f"`{setting.default}`" in row, f"INSPILOT_{setting.name}: default missing"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = 'pip install -e ".[test,embedded]" && python -m pytest'
    assert command in readme and command in ci


def test_every_prompt_step_is_in_the_designers_table() -> None:
    from application.steps import TEXT_STEPS

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for spec in TEXT_STEPS:
        row = next(line for line in readme.splitlines() if f"`{spec.key}.txt`" in line)
        for name in spec.required:
            assert f"`${name}`" in row, f"{spec.key}: ${name} missing from the README"
