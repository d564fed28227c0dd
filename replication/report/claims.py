"""The papers' claims in ``REPORT.md``: every claim of the registry (``replication/claims.yaml``)
judged on the report's run records by :func:`replication.claims.judge_claims`, with the rule, the
flagged runs, and where the verdict would change under another selection rule, without flagged runs
or without one seed. :func:`verdict_lines` is the one entry point the writer calls;
:func:`claims_table` is the same as a tidy table (``claims.csv``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from replication.claims import ClaimResult, claims_markdown, flagged_markdown, judge_claims
from replication.report.inputs import Inputs
from replication.verdicts import NOT_JUDGED, Settings, rule_text


def judged(inputs: Inputs, settings: Settings) -> tuple[list[ClaimResult], pd.DataFrame]:
    """Every registry claim judged on the report's census, synthetic and second-group runs."""
    records = [*(inputs.records or []), *(inputs.synthetic_records or []), *(inputs.group2_records or [])]
    return judge_claims(records, settings)


def claims_table(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim: its numbers, verdict, variants that change it, and the evidence line."""
    rows = []
    for r in results:
        j = r.judgement
        rows.append({
            "claim": r.claim.id, "family": r.claim.family, "paper": r.claim.paper, "source": r.claim.source,
            "statement": r.claim.statement, "analog": r.claim.analog, "n_seeds": None if j is None else j.n,
            "mean": np.nan if j is None else j.mean, "low": np.nan if j is None else j.low,
            "high": np.nan if j is None else j.high, "family_low": np.nan if j is None else j.family_low,
            "family_high": np.nan if j is None else j.family_high, "paper_effect": r.effect,
            "margin": np.nan if j is None else j.margin, "pvalue": r.pvalue, "pvalue_holm": r.p_holm,
            "tost_pvalue": np.nan if j is None else j.tost_pvalue,
            "seeds_needed": None if j is None else j.seeds_needed, "verdict": r.verdict,
            "changes": "; ".join(f"{k}: {v}" for k, v in r.variants.items()), "reading": r.reading(),
        })
    return pd.DataFrame(rows)


def verdict_lines(inputs: Inputs, settings: Settings = Settings(), results: list[ClaimResult] | None = None,
                  flagged: pd.DataFrame | None = None) -> list[str]:
    if results is None or flagged is None:
        results, flagged = judged(inputs, settings)
    not_judged = [r for r in results if r.verdict == NOT_JUDGED]
    changed = [r for r in results if r.variants]
    lines = [rule_text(settings), "", *claims_markdown(results)]
    if not_judged:
        lines += [f"Not judged here: {len(not_judged)} claims whose family needs runs this report was not given "
                  "(the zoo's report, `make reproduce-zoo`, judges them with the same families and rule).", ""]
    lines += ["### Flagged runs", "", *flagged_markdown(flagged), "",
              "### What would change a verdict", ""]
    lines += [f"- {r.claim.statement}: **{r.verdict}**; " + "; ".join(f"{k}: {v}" for k, v in r.variants.items())
              for r in changed] or ["No verdict changes without flagged runs, under per-task selection, or without "
                                    "any one seed."]
    return lines
