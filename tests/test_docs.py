"""The docs show only code that the tests run, so they cannot drift from it.

1. Every Python block of ``docs/**/*.md`` consists of pymdownx.snippets include lines
   (``--8<-- "path"`` or ``--8<-- "path:section"``) whose targets are example files run by a test
   module under ``tests/``; ``mkdocs build --strict`` (``make docs``) then fails on a missing file
   or section.
2. GitHub does not render includes, so README.md keeps literal code: each of its Python blocks
   must be copied verbatim from one of those files.
3. The model tables of ``docs/models.md`` agree with the catalogue the local checks use.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from rivya_provider.client.catalog import CATALOG, ModelSpec, ParamSpec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE_DIRS = (ROOT / "dags_examples", ROOT / "docs" / "examples")
#: A fenced Python block, possibly indented (inside an admonition or a list item).
PYTHON_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)```(?:python|py)\b[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
INCLUDE = re.compile(r"""^--8<--\s+(?P<quote>["'])(?P<target>[^"']+)(?P=quote)\s*$""")


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a Markdown file."""

    doc: str
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    doc = path.relative_to(ROOT).as_posix()
    return [
        Block(
            doc=doc,
            line=text.count("\n", 0, match.start()) + 1,
            code=textwrap.dedent(match["body"]),
        )
        for match in PYTHON_BLOCK.finditer(text)
    ]


def examples_run_by_tests() -> dict[str, Path]:
    """Return the example files that a test module names, by repository-relative path.

    An example counts as tested when a module under ``tests/`` (other than this one) names its
    file: those modules import the example, run its DAG with ``dag.test()`` or run it as a script.
    """
    test_sources = "\n".join(
        path.read_text() for path in (ROOT / "tests").rglob("*.py") if path.name != "test_docs.py"
    )
    return {
        path.relative_to(ROOT).as_posix(): path
        for folder in EXAMPLE_DIRS
        for path in sorted(folder.glob("*.py"))
        if path.name in test_sources
    }


DOC_BLOCKS = [block for page in sorted(DOCS.rglob("*.md")) for block in python_blocks(page)]
README_BLOCKS = python_blocks(ROOT / "README.md")


def test_the_docs_quote_the_examples() -> None:
    # Guards the collection above: a broken pattern would make the checks below vacuous.
    assert len(DOC_BLOCKS) >= 5
    assert README_BLOCKS
    assert "dags_examples/rivya_quickstart.py" in examples_run_by_tests()


@pytest.mark.parametrize("block", DOC_BLOCKS, ids=str)
def test_doc_python_blocks_only_include_tested_examples(block: Block) -> None:
    lines = [line.strip() for line in block.code.splitlines() if line.strip()]
    assert lines, f"{block}: empty Python block"
    literal = [line for line in lines if not INCLUDE.match(line)]
    assert not literal, (
        f"{block}: Python blocks in the docs must only include tested files with "
        f'--8<-- "path" or --8<-- "path:section", not hold literal code: {literal[:3]}'
    )
    tested = examples_run_by_tests()
    for line in lines:
        match = INCLUDE.match(line)
        assert match is not None
        path, _, section = match["target"].partition(":")
        assert path in tested, (
            f"{block}: {path} is not an example file run by the tests; tested: {sorted(tested)}"
        )
        if section and not section.replace(":", "").isdigit():
            source = tested[path].read_text()
            for edge in ("start", "end"):
                assert f"--8<-- [{edge}:{section}]" in source, (
                    f"{block}: {path} has no '# --8<-- [{edge}:{section}]' marker"
                )


@pytest.mark.parametrize("block", README_BLOCKS, ids=str)
def test_readme_python_blocks_are_copied_from_tested_examples(block: Block) -> None:
    code = block.code.strip()
    sources = {name: path.read_text() for name, path in examples_run_by_tests().items()}
    assert any(code in source for source in sources.values()), (
        f"{block} is not copied verbatim from a tested example ({sorted(sources)}):\n{code}"
    )


def _table_rows(markdown: str) -> list[list[str]]:
    """Return the body rows of every Markdown table, as lists of stripped cells."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _section(markdown: str, model_id: str) -> str:
    """Return the text under the ``##`` heading that names ``model_id``."""
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)
    (section,) = [part for part in parts if model_id in part.splitlines()[0]]
    return section


def _documented_allowed(spec: ParamSpec) -> str:
    if spec.type == "select":
        return ", ".join(f"`{option}`" for option in spec.options)
    if spec.type == "number":
        return f"{spec.min:g} to {spec.max:g}"
    return "any text"


@pytest.mark.parametrize("model", list(CATALOG.values()), ids=lambda spec: spec.id)
def test_models_page_agrees_with_the_catalogue(model: ModelSpec) -> None:
    page = (DOCS / "models.md").read_text()
    (summary,) = [row for row in _table_rows(page) if row[0] == f"`{model.id}`"]
    assert summary[1] == str(model.base_credits)
    if model.max_prompt_length is None:
        assert "no documented limit" in summary[2]
    else:
        assert f"at most {model.max_prompt_length} characters" in summary[2]
    assert summary[3].split()[-1] == str(model.max_reference_images)

    documented = {row[0]: row[1:] for row in _table_rows(_section(page, model.id))}
    expected = {
        f"`{param.key}`": [
            param.type,
            "none" if param.default is None else f"`{param.default}`",
            _documented_allowed(param),
        ]
        for param in model.params
    }
    assert {key: documented.get(key) for key in expected} == expected
    assert set(documented) - {"param"} == set(expected), "the page lists params the model lacks"
