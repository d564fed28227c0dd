"""The leaderboard: one row per protocol, model and loss weighting, ranked by Δm against Single-Task.

Reads run records (``RUNS/<model>/seed_K.json``) from one or more folders and writes ``OUT.csv``
(every protocol, with a ``protocol_hash`` column) and ``OUT.md`` (one section per protocol: rows of
different protocols never share a table). Within a protocol every entry is compared with the
reference (Single-Task) paired by seed: per-task mean ± std, MTL gain with its Holm-adjusted paired
t-test over the protocol's (entry, task) comparisons, Δm, and the rank by Δm. The statistics are
those of :mod:`replication.compare`; this module only arranges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from replication.aggregate import cell, tidy
from replication.claims import judge_claims
from replication.compare import ALPHA, compare_to_reference, delta_m_by_model, per_model
from replication.config import ConfigError
from replication.io import write_together
from replication.protocol import loss_weighting, protocol, protocol_hash, tuning_label
from replication.records import load_records
from replication.verdicts import NOT_JUDGED, Settings

REFERENCE = "single_task"
RANK_RULE = ("Rank: by Δm against {reference}, descending (1 = best; equal Δm share the better rank; "
             "{reference} itself has Δm 0).")


def load_runs(dirs: Sequence[Path]) -> list[dict]:
    """Every record under each folder (:func:`replication.records.load_records` per folder, so one
    model may appear in folders of different protocols); one run given twice is refused."""
    records = [r for directory in dirs for r in load_records(directory)]
    seen: dict[tuple, str] = {}
    for r in records:
        key = (protocol_hash(r), r["model"], loss_weighting(r), r["seed"])
        if key in seen:
            raise ConfigError(f"seed {r['seed']} of {r['model']} ({key[2]} loss weighting, protocol {key[0]}) is in "
                              f"both {seen[key]} and {r['source']}; pass each run folder once")
        seen[key] = r["source"]
    return records


def by_protocol(records: Iterable[dict]) -> dict[str, list[dict]]:
    """Records grouped by protocol hash, in order of data set, task group and hash."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(protocol_hash(r), []).append(r)
    return dict(sorted(groups.items(), key=lambda item: (item[1][0]["dataset"], item[1][0]["task_group"], item[0])))


def _entry(record: dict) -> str:
    return f"{record['model']} | {loss_weighting(record)}"


def entry_scores(records: list[dict]) -> pd.DataFrame:
    """The tidy run table (:func:`replication.aggregate.tidy`) of one protocol's records, keyed by
    entry (model and loss weighting) in the ``model`` column, with ``entry_model`` and
    ``entry_weighting`` beside it."""
    scores = tidy([{**r, "model": _entry(r)} for r in records])
    names = {_entry(r): (r["model"], loss_weighting(r)) for r in records}
    scores["entry_model"] = scores["model"].map(lambda key: names[key][0])
    scores["entry_weighting"] = scores["model"].map(lambda key: names[key][1])
    return scores


def reference_entry(records: list[dict], reference: str) -> str:
    """The reference's entry: its only loss weighting, else its ``equal`` one."""
    weightings = sorted({loss_weighting(r) for r in records if r["model"] == reference})
    if not weightings:
        p = protocol(records[0])
        raise ConfigError(f"protocol {protocol_hash(records[0])} ({p['dataset']}, {p['task_group']}, split seed "
                          f"{p['split_seed']}) has no {reference} runs to measure gains against; train {reference} "
                          f"with the same data and training parameters, or leave those runs out")
    if len(weightings) > 1 and "equal" not in weightings:
        raise ConfigError(f"{reference} has runs under several loss weightings ({'; '.join(weightings)}) and none "
                          f"equal; pass the {reference} runs of one weighting only")
    return f"{reference} | {weightings[0] if len(weightings) == 1 else 'equal'}"


def tasks_of(record: dict) -> list[tuple[str, str]]:
    """(task, metric) pairs of a record, in the record's task order."""
    return [(t["name"], next(iter(record["test"][t["name"]]))) for t in record["tasks"]]


def _distinct(values: Iterable[Any]) -> Any:
    """The value when all agree, else the distinct values joined by `` | ``."""
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else " | ".join(sorted(map(str, unique)))


def _seeds(values: Iterable[int]) -> str:
    return " ".join(map(str, sorted(values)))


def protocol_rows(records: list[dict], reference: str = REFERENCE) -> pd.DataFrame:
    """The leaderboard rows of one protocol's records, ranked (see :data:`RANK_RULE`)."""
    scores = entry_scores(records)
    ref = reference_entry(records, reference)
    stats = per_model(scores).set_index(["model", "task"])
    comparisons = compare_to_reference(scores, ref).set_index(["model", "task"])
    delta = delta_m_by_model(scores, ref).set_index("model")["delta_m_percent"]
    reference_seeds = {r["seed"] for r in records if _entry(r) == ref}
    first = records[0]
    rows = []
    for key, group in scores.groupby("model", sort=False):
        runs = [r for r in records if _entry(r) == key]
        seeds = {r["seed"] for r in runs}
        row: dict[str, Any] = {
            "protocol_hash": protocol_hash(first), "dataset": first["dataset"], "task_group": first["task_group"],
            "model": group["entry_model"].iat[0], "loss_weighting": group["entry_weighting"].iat[0],
            "reference": reference, "delta_m_percent": delta[key], "n_seeds": len(seeds), "seeds": _seeds(seeds),
            "unpaired_seeds": "" if key == ref else _seeds(seeds - reference_seeds),
        }
        for task, metric in tasks_of(first):
            own = stats.loc[(key, task)]
            row[f"{task}_{metric}_mean"], row[f"{task}_{metric}_std"] = own["mean"], own["std"]
            versus = comparisons.loc[(key, task)] if (key, task) in comparisons.index else None
            for column, source in (("mtl_gain", "gain"), ("mtl_gain_low", "gain_low"), ("mtl_gain_high", "gain_high"),
                                   ("pvalue_holm", "t_pvalue_holm")):
                row[f"{task}_{column}"] = np.nan if versus is None else versus[source]
            row[f"{task}_significant"] = pd.NA if versus is None else bool(versus["significant"])
        row |= {
            "n_parameters": _distinct(r["n_parameters"] for r in runs),
            "mean_train_seconds": float(np.mean([r["seconds"] for r in runs])),
            "device": _distinct(r["environment"]["device"] for r in runs),
            "git_commit": _distinct(r["environment"]["git_commit"] for r in runs),
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(3, "rank", table["delta_m_percent"].rank(ascending=False, method="min").astype(int))
    return table.sort_values(["rank", "model", "loss_weighting"]).reset_index(drop=True)


def leaderboard(records: list[dict], reference: str = REFERENCE) -> pd.DataFrame:
    """The rows of every protocol, protocol by protocol (data set, task group, hash), each ranked on its own."""
    return pd.concat([protocol_rows(group, reference) for group in by_protocol(records).values()], ignore_index=True)


def compare_with_every_model(records: list[dict], model: str) -> pd.DataFrame:
    """``model``'s comparison with every other entry of one protocol's records: its gain over each
    (paired by seed, 95% interval), the paired t and Wilcoxon tests, Holm over that family (every
    other entry and task), and the seeds of ``model`` that the other entry lacks (unpaired)."""
    scores = entry_scores(records)
    own = {_entry(r) for r in records if r["model"] == model}
    if len(own) != 1:
        raise ConfigError(f"model {model!r} needs runs under exactly one loss weighting here, found {len(own)}")
    key = own.pop()
    # compare_to_reference measures every other entry against `model`; turned around, each row is
    # `model`'s gain over that entry (a paired gain and its interval change sign; the tests are symmetric).
    table = compare_to_reference(scores, key)
    other = table["model"]
    names = scores.drop_duplicates("model").set_index("model")
    turned = table.assign(
        model=model, reference=other.map(names["entry_model"]), reference_loss_weighting=other.map(names["entry_weighting"]),
        gain=-table["gain"], gain_low=-table["gain_high"], gain_high=-table["gain_low"],
        probability_of_improvement=1 - table["probability_of_improvement"],
    )
    own_seeds = {r["seed"] for r in records if _entry(r) == key}
    seeds_of = {k: {r["seed"] for r in records if _entry(r) == k} for k in set(other)}
    turned["unpaired_seeds"] = [_seeds(own_seeds - seeds_of[k]) for k in other]
    columns = ["model", "reference", "reference_loss_weighting", "task", "n_pairs", "paired_seeds", "unpaired_seeds",
               "gain", "gain_low", "gain_high", "t_pvalue", "t_pvalue_holm", "wilcoxon_pvalue", "wilcoxon_pvalue_holm",
               "wilcoxon_min_pvalue", "probability_of_improvement", "significant", "note"]
    return turned[columns]


# ------------------------------------------------------------------------------------------------
# Markdown


def _short_commits(text: str) -> str:
    """Each commit of a `` | ``-joined list to 12 characters, keeping a ``-dirty`` mark (the csv keeps them
    whole), joined by commas: a ``|`` would end the Markdown table's cell."""
    return ", ".join(c if c == "unknown" else c[:12] + ("-dirty" if c.endswith("-dirty") else "")
                     for c in text.split(" | "))


def markdown_table(rows: pd.DataFrame, tasks: list[tuple[str, str]], mark: str | None = None) -> list[str]:
    """Rows of one protocol as a Markdown table; the row of model ``mark`` in bold."""
    header = ["rank", "model", "loss weighting", "seeds"]
    for task, metric in tasks:
        header += [f"{task} {metric}", f"{task} gain", f"{task} p (Holm)"]
    header += ["Δm (%)", "params", "train s", "device", "commit"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows.to_dict("records"):
        name = f"**{row['model']}**" if row["model"] == mark else row["model"]
        cells = [str(row["rank"]), name, row["loss_weighting"], str(row["n_seeds"])]
        for task, metric in tasks:
            mean, std = row[f"{task}_{metric}_mean"], row[f"{task}_{metric}_std"]
            cells += [f"{mean:.4f}" + cell(std, " ± {:.4f}"),
                      cell(row[f"{task}_mtl_gain"], "{:+.4f}") + ("*" if row[f"{task}_significant"] is True else ""),
                      cell(row[f"{task}_pvalue_holm"], "{:.3g}")]
        params = row["n_parameters"]
        cells += [f"{row['delta_m_percent']:+.3f}", f"{params:,}" if isinstance(params, (int, np.integer)) else params,
                  f"{row['mean_train_seconds']:.0f}",
                  str(row["device"]), _short_commits(str(row["git_commit"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def protocol_header(record: dict) -> list[str]:
    p = protocol(record)
    training = ", ".join(f"{k}={v}" for k, v in sorted(p["train"].items()))
    metrics = ", ".join(f"{task} {metric}" for task, metric in tasks_of(record))
    search = p.get("tuning")
    tuned = (f"Tuned: each model's best configuration of {search['trials']} trials on validation "
             f"({search['objective']} objective; successive halving, eta {search['eta']}, from epoch "
             f"{search['min_epochs']}), with the searched training keys chosen per model (replication.tuning). "
             if search else "")
    return [
        f"## Protocol `{protocol_hash(record)}`: {p['dataset']}, task group {p['task_group']}"
        + (f", tuned ({search['trials']} trials per model)" if search else ""),
        "",
        f"{tuned}Split seed {p['split_seed']}, processed data `{p['data_hash'][:12]}`, record format {p['format']}; "
        f"test metrics: {metrics}; training: {training}.",
        "",
    ]


def unpaired_notes(rows: pd.DataFrame) -> list[str]:
    return [f"- {r['model']} ({r['loss_weighting']}): seed(s) {r['unpaired_seeds']} have no {r['reference']} run "
            f"and are left out of its paired comparisons" for r in rows.to_dict("records") if r["unpaired_seeds"]]


def claim_notes(records: list[dict], settings: Settings) -> list[str]:
    """The registry's claims judged on these runs (:mod:`replication.claims`), one line each; the
    report (``paper_figures/REPORT.md``) gives their evidence. Runs chosen by different search plans
    (:func:`replication.protocol.tuning_label`: untuned, tuned with N trials) are judged apart, one
    column each, and a last column says whether the verdict changed between them."""
    by_plan: dict[str, list[dict]] = {}
    for r in records:
        if r.get("status") == "ok":
            by_plan.setdefault(tuning_label(r), []).append(r)
    verdicts = {plan: {res.claim.id: res for res in judge_claims(runs, settings)[0]} for plan, runs in by_plan.items()}
    claims = [res.claim for res in next(iter(verdicts.values()), {}).values()]
    judged = [c for c in claims if any(v[c.id].verdict != NOT_JUDGED for v in verdicts.values())]
    if not judged:
        return []
    lines = ["## The papers' claims on these runs", "",
             "Judged by `replication/claims.py` under `replication/verdicts.py`'s rule (families fixed by "
             "`replication/claims.yaml`); the evidence is in `paper_figures/REPORT.md`. Claims whose runs are not "
             "here are left out.", ""]
    if len(verdicts) == 1:
        (plan,) = verdicts.values()
        return lines + [f"- {c.statement} ({c.paper} {c.source}): **{plan[c.id].verdict}**" for c in judged] + [""]
    plans = list(verdicts)
    lines += ["Each search plan's runs judged on their own (untuned: params.yaml's configuration; tuned: each "
              "model's best configuration of its search, `replication/tuning.py`).", "",
              "| claim | source | " + " | ".join(plans) + " | verdict changed by tuning |",
              "|---|---|" + "---|" * len(plans) + "---|"]
    for c in judged:
        found = [verdicts[p][c.id].verdict for p in plans]
        changed = "yes" if len({v for v in found if v != NOT_JUDGED}) > 1 else "no"
        lines.append(f"| {c.statement} | {c.paper} {c.source} | " + " | ".join(f"**{v}**" for v in found)
                     + f" | {changed} |")
    return lines + [""]


def to_markdown(table: pd.DataFrame, records: list[dict], reference: str = REFERENCE,
                settings: Settings = Settings()) -> str:
    groups = by_protocol(records)
    lines = [
        "# Leaderboard",
        "",
        "Generated by `python -m replication leaderboard` from run records; do not edit. One section per "
        "protocol (the hash of the record format, data, split, tasks with their metrics and training parameters, "
        "less the execution-only keys and the loss weighting, `replication.protocol.protocol_hash`): rows of "
        f"different protocols are never compared. Test metric mean ± sample std over seeds. Gain: MTL gain "
        f"(PLE Eq. 11, positive is better) against {reference}, paired by seed; `*` = significant at {ALPHA} "
        f"after Holm's correction over every (entry, task) comparison of the section (paired t-test; p (Holm) "
        f"is the adjusted p-value). Δm: Maninis et al. 2019, mean over tasks of the signed relative change "
        f"against {reference}. " + RANK_RULE.format(reference=reference),
        "",
    ]
    for digest, group in groups.items():
        rows = table[table["protocol_hash"] == digest]
        lines += protocol_header(group[0]) + markdown_table(rows, tasks_of(group[0]))
        notes = unpaired_notes(rows)
        lines += (["", "Unpaired seeds:", *notes] if notes else []) + [""]
    lines += claim_notes(records, settings)
    return "\n".join(lines)


def write_leaderboard(runs: Sequence[Path], out: Path, reference: str = REFERENCE,
                      settings: Settings = Settings()) -> pd.DataFrame:
    """Write ``OUT.csv`` and ``OUT.md`` (both only once the whole table is built)."""
    records = load_runs(runs)
    table = leaderboard(records, reference)
    markdown = to_markdown(table, records, reference, settings)
    write_together({Path(out).with_suffix(".csv"): table.to_csv(index=False, float_format="%.6g"),
                    Path(out).with_suffix(".md"): markdown})
    return table
