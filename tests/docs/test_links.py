"""Every relative link in README.md, CHANGELOG.md and docs/ resolves to a file of this repository (and, for
`page.md#anchor`, to a heading of that page), and no page points outside the repository: the docs must stand
alone in any checkout, so nothing may lead to a sibling directory or an absolute path of one machine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)  # [name]: target
HTML = re.compile(r"<(?:a|img)\s[^>]*(?:href|src)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, …


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code (a `[x](y)` there is an example, not a link)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _links(page: Path) -> Iterator[str]:
    prose = _prose(page.read_text(encoding="utf-8"))
    for pattern in (INLINE, REFERENCE, HTML):
        yield from pattern.findall(prose)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _fenceless(page.read_text(encoding="utf-8")), flags=re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", page.read_text(encoding="utf-8")))
    return out


def _fenceless(text: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)


def _relative(page: Path) -> list[str]:
    return [t for t in _links(page) if not SCHEME.match(t)]


def test_the_pages_have_links_to_check() -> None:
    assert ROOT / "docs" / "provider-semantics.md" in PAGES and ROOT / "docs" / "upgrading.md" in PAGES
    assert sum(len(_relative(p)) for p in PAGES) > 50


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(page: Path) -> None:
    problems = []
    for target in _relative(page):
        path, _, anchor = target.partition("#")
        if path.startswith("/"):
            problems.append(f"{target}: an absolute path (use a path relative to {page.relative_to(ROOT)})")
            continue
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not problems, f"{page.relative_to(ROOT)}: " + "; ".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_links_outside_the_repository(page: Path) -> None:
    """A web address is cited as text (`https://…` in code), never a link: the docs stand alone in a checkout."""
    prose = _prose(page.read_text(encoding="utf-8"))
    web = [t for t in _links(page) if SCHEME.match(t)] + re.findall(r"<([a-z][a-z0-9+.-]*:[^>\s]+)>", prose)
    assert web == [], f"{page.relative_to(ROOT)}: links outside the repository: {web}"


def _outside(page: Path, text: str) -> list[str]:
    found = re.findall(r"(?<![\w.])(?:\.\./)+[\w.-]+|/work/[\w./-]+|\bshared/design\b|\bARCHITECTURE\.md\b", text)
    return [o for o in found if not o.startswith("..") or not (page.parent / o).resolve().is_relative_to(ROOT)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_names_a_file_outside_the_repository(page: Path) -> None:
    """Also in plain text and code: a reader of a checkout has no ../shared or /work/… to open."""
    assert _outside(page, page.read_text(encoding="utf-8")) == [], page.relative_to(ROOT)


def test_the_checker_catches_what_it_must(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Title\n[a](../x.md) [b](#title) [c](https://e.org) `[d](nope.md)`\n[r]: missing.md\n")
    assert _relative(page) == ["../x.md", "#title", "missing.md"]
    assert _anchors(page) == {"title"}
    doc = ROOT / "docs" / "x.md"
    assert _outside(doc, "see ../../shared/design/x.md, ../CHANGELOG.md and ARCHITECTURE.md") == [
        "../../shared",
        "ARCHITECTURE.md",
    ]
