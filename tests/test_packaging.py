"""What the package index gets: the wheel and sdist as ``pyproject.toml`` builds them.

Both are built once, in the venv (hatchling and hatch-fancy-pypi-readme come with
``requirements/dev.in``), so nothing is fetched. The wheel carries the licence; only the extras a
user installs are published; the long description, built from README.md, keeps no link relative
to the repository (the package index page shows it without the repository around it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A Markdown link or image whose target is neither a web address nor an anchor of the page.
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#)[^)]*\)")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def _wheel(dist: Path) -> zipfile.ZipFile:
    (wheel,) = dist.glob("*.whl")
    return zipfile.ZipFile(wheel)


def _wheel_metadata(dist: Path) -> Message:
    with _wheel(dist) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(wheel.read(name).decode())


def _sdist_metadata(dist: Path) -> Message:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        (member,) = [
            m
            for m in archive.getmembers()
            if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
        ]
        handle = archive.extractfile(member)
        assert handle is not None
        return Parser().parsestr(handle.read().decode())


def test_the_wheel_carries_the_licence(dist: Path) -> None:
    with _wheel(dist) as wheel:
        licences = [n for n in wheel.namelist() if ".dist-info/" in n and n.endswith("/LICENSE")]
        assert len(licences) == 1, wheel.namelist()
        text = wheel.read(licences[0]).decode()
    assert "Apache License" in text
    assert "Version 2.0" in text
    assert _wheel_metadata(dist)["License-Expression"] == "Apache-2.0"


def test_only_the_extras_a_user_installs_are_published(dist: Path) -> None:
    metadata = _wheel_metadata(dist)

    assert sorted(metadata.get_all("Provides-Extra") or []) == ["emulator", "openlineage"]
    requirements = metadata.get_all("Requires-Dist") or []
    # Nothing of development leaks in through another name.
    for tool in ("pytest", "ruff", "mypy", "playwright", "mkdocs", "httpx-aiohttp"):
        assert not [r for r in requirements if r.startswith(tool)], requirements


def test_project_urls_name_only_rivyas_own_sites(dist: Path) -> None:
    urls = _wheel_metadata(dist).get_all("Project-URL") or []

    assert urls == ["Rivya, https://rivya.ai", "Rivya API documentation, https://rivya.ai/docs/api"]


@pytest.mark.parametrize("read", [_wheel_metadata, _sdist_metadata], ids=["wheel", "sdist"])
def test_the_long_description_keeps_no_link_relative_to_the_repository(
    dist: Path, read: Callable[[Path], Message]
) -> None:
    metadata = read(dist)
    description = metadata.get_payload()
    assert isinstance(description, str)
    readme = (ROOT / "README.md").read_text()

    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "](docs/" in readme  # the substitution below has something to do
    assert "](docs/" not in description
    assert "](dags_examples/" not in description
    assert not RELATIVE_LINK.findall(description), RELATIVE_LINK.findall(description)[:5]
    # Each link keeps its text; web links stay links.
    assert "- Quickstart: the two commands" in description
    assert "[Rivya](https://rivya.ai)" in description
    assert description.count("\n## ") == readme.count("\n## ")
