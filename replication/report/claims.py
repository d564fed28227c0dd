"""The papers' claims judged from the checked inputs: :func:`verdict_lines` is the one entry point
the writer calls (the table of claims, evidence and verdicts in ``REPORT.md``, and its rules).
"""

from __future__ import annotations

import pandas as pd

from replication import figures
from replication.compare import ALPHA
from replication.report.inputs import OPTIONS, Inputs, reference_model, tasks_of
from replication.report.tables import interval
from replication.verdicts import (
    INCONCLUSIVE, MMOE, NOT_ASSESSED, NOT_REPRODUCED, PARTLY, PLE, REPRODUCED, Verdict, synthetic_verdicts, verdict,
)


def census_verdicts(census: pd.DataFrame, model: str = PLE) -> list[Verdict]:
    """"``model`` beats the reference on census <task>", one per task, from the table's MTL gains."""
    reference = figures.model_style(reference_model(census)).label
    label = figures.model_style(model).label
    verdicts = []
    for task in tasks_of(census):
        claim = f"{label} beats {reference} on census {task}"
        row = census[(census["model"] == model) & (census["task"] == task)]
        if row.empty:
            verdicts.append(Verdict(claim, f"no {model} rows in --census", NOT_ASSESSED))
            continue
        r = row.iloc[0]
        evidence = (f"{label} − {reference} test {r['metric'].upper()}: {interval(r['mtl_gain'], r['mtl_gain_low'], r['mtl_gain_high'])}"
                    f" (95% CI), Holm p = {r['pvalue_holm']:.3g}, {int(r['n_seeds'])} seeds")
        verdicts.append(Verdict(claim, evidence, verdict(r["mtl_gain"], bool(r["significant"]))))
    return verdicts


def versus_verdicts(comparisons: pd.DataFrame, winner: str = PLE, loser: str = MMOE) -> list[Verdict]:
    """"``winner`` beats ``loser`` on census <task>" from the statistics' comparisons against ``winner``
    (``loser``'s gain over it, negated: ``winner`` minus ``loser``, paired by seed)."""
    names = figures.model_style(winner).label, figures.model_style(loser).label
    rows = comparisons[(comparisons["reference"] == winner) & (comparisons["model"] == loser)]
    if rows.empty:
        return [Verdict(f"{names[0]} beats {names[1]} on census", f"comparisons.csv has no rows of {loser} against "
                        f"reference {winner}; run `python -m replication stats --reference {winner}`", NOT_ASSESSED)]
    return [
        Verdict(f"{names[0]} beats {names[1]} on census {r.task}",
                f"{names[0]} − {names[1]} test metric: {interval(-r.gain, -r.gain_high, -r.gain_low)} (95% CI), "
                f"Holm p = {r.t_pvalue_holm:.3g} (family: every model against {names[0]}), {int(r.n_pairs)} seeds",
                verdict(-r.gain, bool(r.significant)))
        for r in rows.itertuples(index=False)
    ]


def verdict_lines(inputs: Inputs) -> list[str]:
    parts = {
        "census": lambda: census_verdicts(inputs.census),
        "comparisons": lambda: versus_verdicts(inputs.comparisons),
        "sweep": lambda: synthetic_verdicts(inputs.sweep, label=lambda m: figures.model_style(m).label),
    }
    verdicts = []
    for name, build in parts.items():
        verdicts += build() if getattr(inputs, name) is not None else [
            Verdict(f"claims from {OPTIONS[name]}", f"{OPTIONS[name]} not given", NOT_ASSESSED)]
    lines = ["| claim | evidence | verdict |", "|---|---|---|"]
    lines += [f"| {v.claim} | {v.evidence} | **{v.verdict}** |" for v in verdicts]
    return lines + [
        "",
        f"Rules (computed, not written by hand): a claim that one model beats another is *{REPRODUCED}* when the "
        f"paired gain is positive and significant (Holm-adjusted paired t-test p < {ALPHA}), *{NOT_REPRODUCED}* when "
        f"it is negative and significant, *{INCONCLUSIVE}* otherwise. The synthetic claims use the sweep's rules on "
        f"point estimates: the gap claim is *{REPRODUCED}* if the gap grows at every step as the correlation falls, "
        f"*{PARTLY}* if it is only larger at the lowest than at the highest correlation; the sweep's Markdown "
        "gives each gap's interval.",
    ]
