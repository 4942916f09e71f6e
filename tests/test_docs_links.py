"""Every relative link of the README and the docs pages resolves: to a file of the repository,
and, with a #fragment, to a heading of that page (as a forge renders its anchors)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but hyphens and underscores dropped,
    spaces as hyphens."""
    headings = [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def broken_links(pages=PAGES) -> list[str]:
    """``page: target (why)`` for every relative link of ``pages`` that resolves to nothing."""
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto: are not ours to check
                continue
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_resolves():
    assert len(PAGES) >= 8 and broken_links() == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# A title\n[ok](a.md#a-title) [gone](b.md) [bad anchor](a.md#nope) "
                                   "[web](https://x.org) [self](#a-title)\n")
    assert broken_links([tmp_path / "a.md"]) == ["a.md: b.md (no such file)", "a.md: a.md#nope (no such heading)"]
