"""Every ```python block in docs/ runs, page by page, against a real issuer on 127.0.0.1.

The blocks of one page share a namespace, in order, as a reader would paste them. A page gets no
name from the test: only the environment it tells the reader to set (``docs_env``).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.docs.conftest import LiveIssuer

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
PAGES = sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text()))


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def test_pages_with_examples_are_found() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"quickstart.md", "fetch-tokens.md", "protect-api.md", "rotate-keys.md", "security.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page: Path, docs_env: LiveIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real module: Litestar resolves handler annotations through sys.modules[__module__].
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    # Nothing is injected: a page runs with only the environment it tells the reader to set.
    assert set(namespace) <= {"__name__", "__doc__", "__package__", "__loader__", "__spec__"}
    for number, source in enumerate(blocks(page), 1):
        code = compile(source, f"{page.relative_to(DOCS)} block {number}", "exec")
        exec(code, namespace)


def test_a_failing_example_fails_the_test(docs_env: LiveIssuer, tmp_path: Path) -> None:
    # The harness must not swallow a wrong claim in the docs.
    page = tmp_path / "wrong.md"
    page.write_text("```python\nassert 1 + 1 == 3\n```\n")
    with pytest.raises(AssertionError):
        for source in blocks(page):
            exec(compile(source, str(page), "exec"), {})
