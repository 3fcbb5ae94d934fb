"""The README opens the door and the docs/ pages hold the rest: the README stays short, every page is linked
from it, every relative link of the README and the pages resolves, and every generated block sits in its page
once (their contents are checked where they are made: tests/test_results.py, test_register.py, test_notebooks.py)."""
import re
from pathlib import Path

from asc_lib.config import paths
from asc_lib.study import results

ROOT = paths.ROOT
PAGES = sorted((ROOT / "docs").glob("*.md"))
GENERATED = {**results.BLOCK_PAGES, "register": "docs/deviations.md", "torchrun": "docs/gpu.md",
             "choices": "docs/findings.md"}


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # not inside code blocks
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_the_readme_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("\n") <= 200
    linked = {link.split("#")[0] for link in _links(ROOT / "README.md")}
    assert PAGES and {f"docs/{p.name}" for p in PAGES} <= linked


def test_every_relative_link_resolves():
    for page in [ROOT / "README.md", ROOT / "asc_lib" / "README.md", *PAGES]:
        for link in _links(page):
            if re.match(r"[a-z]+:", link) or link.startswith("#"):
                continue
            target = (page.parent / link.split("#")[0]).resolve()
            assert target.exists(), f"{page.relative_to(ROOT)}: broken link {link}"


def test_every_generated_block_sits_in_its_page_once():
    for name, page in GENERATED.items():
        for other in [ROOT / "README.md", *PAGES]:
            text = other.read_text(encoding="utf-8")
            start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
            expected = 1 if other == ROOT / page else 0
            assert text.count(start) == text.count(end) == expected, (name, other.name)
