"""The README and the docs/ pages: the README's result block is the generated HEADLINE.md, and every
relative link of the README and the pages points at a file or folder that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from replication.report.headline import END, START, headline_markdown

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_result_block_is_the_generated_headline() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(START):readme.index(END) + len(END)] + "\n"
    assert block == (REPO / "paper_figures" / "HEADLINE.md").read_text(encoding="utf-8")


def test_headline_is_what_the_committed_tables_give() -> None:
    census = pd.read_csv(REPO / "results" / "census_income_marital.csv")
    claims = pd.read_csv(REPO / "paper_figures" / "claims.csv")
    assert headline_markdown(census, claims) == (REPO / "paper_figures" / "HEADLINE.md").read_text(encoding="utf-8")


def test_headline_counts_verdicts_and_skips_families_not_judged() -> None:
    claims = pd.DataFrame({
        "family": ["ple_table5", "ple_table5", "mmoe_tables"], "verdict": ["contradicted", "reproduced", "not judged here"],
        "statement": ["A beats B", "C beats D", "E beats F"], "mean": [-0.001, 0.002, None], "low": [-0.002, 0.001, None],
        "high": [0.0, 0.003, None], "paper_effect": [0.0078, None, None]})
    text = headline_markdown(None, claims)
    assert "- PLE on census (Table 5): 2 claims, 1 reproduced, 1 contradicted" in text
    assert "MMoE" not in text
    assert "| A beats B | -0.00100 [-0.00200, +0.00000] | +0.0078 | **contradicted** |" in text
    assert "| C beats D | +0.00200 [+0.00100, +0.00300] |  | **reproduced** |" in text


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"(https?:|mailto:|#)", target):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
