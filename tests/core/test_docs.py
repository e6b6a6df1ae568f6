"""The README's promises: two commands, CI runs the test command verbatim, every command documented."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from obembed.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_two_commands_and_ci_runs_the_test_one_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README needs a '## Two commands' section with a bash block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci.splitlines()
    for script in ("scripts/demo.sh", "scripts/test.sh", "scripts/setup.sh"):
        assert (ROOT / script).exists(), script
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert setup.index('"torch==2.13.0"') < setup.index("pip install -e")  # torch first, pinned


def test_no_torch_requirement_that_pip_could_resolve_to_cuda():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert not [r for r in reqs if re.match(r"torch\b", r)], "torch comes from setup.sh (torch==2.13.0, first)"


def test_every_command_is_documented_with_help():
    cli_doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    runner = CliRunner()
    for name in COMMANDS:
        assert f"obembed {name}" in cli_doc or f"## {name}" in cli_doc or f", {name}" in cli_doc, name
        assert f"obembed {name}" in readme, name
        res = runner.invoke(main, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)


def test_docs_links_resolve():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", text):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
