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

    guide = (REPO_ROOT / "docs" / "prompts.md").read_text(encoding="utf-8")
    for spec in TEXT_STEPS:
        row = next(line for line in guide.splitlines() if f"`{spec.key}.txt`" in line)
        for name in spec.required:
            assert f"`${name}`" in row, f"{spec.key}: ${name} missing from docs/prompts.md"


def test_every_document_the_readme_links_exists() -> None:
    import re

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert linked, "the README links its deep topics in docs/"
    for path in linked:
        assert (REPO_ROOT / path).is_file(), path
    for page in (REPO_ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"docs/{page.name} is not linked from the README"


def test_the_contract_lives_in_the_repository() -> None:
    """A clone holds the whole contract: the README links docs/contract.md, which names
    every stage key and every field each /generate type takes."""
    import msgspec

    from domain.experiment import Stage
    from entrypoints.pipelines.registry import PIPELINES

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    contract = (REPO_ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    assert "../shared" not in readme and "(docs/contract.md)" in readme
    for stage in Stage:
        assert f"| `{stage.value}` |" in contract, stage
    for entry in PIPELINES:
        section = contract[contract.index(f"### Type {entry.legacy_type}:") :]
        section = section[: section.index("\n### ", 1)]
        for field in msgspec.structs.fields(entry.prompts):
            assert f'"{field.encode_name}"' in section, (entry.legacy_type, field.encode_name)
