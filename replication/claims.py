"""The papers' claims (``replication/claims.yaml``) judged on run records, one Holm family per set.

From run records this module builds one tidy table of per-seed observations (test scores oriented
larger-is-better, validation scores, flagged runs, the gates' concentration), computes each claim's
per-seed values (:func:`claim_values`), and judges every family whose claims all have their runs
(:func:`judge_claims`) under :mod:`replication.verdicts`' rule. A family missing any claim's runs
is not judged at all (its claims read "not judged here"), so the same claim gets the same verdict
in every report that judges it, whatever other models a report adds.

Each verdict is also computed three more ways, and the table says where they differ:
- without flagged runs: a run whose validation score ends far below its model's other seeds (a
  modified z-score beyond a cut calibrated to the seed count, :mod:`replication.stats.outliers`)
  is dropped with its seed's pair;
- under per-task selection: every multi-task run's tasks read at their own best validation epoch
  (the records' ``per_task_selection``), the chance Single-Task gets;
- leaving out each seed in turn (the whole family at once): a verdict that one seed can flip is
  *fragile*, and says which seed and to what.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from replication.config import ConfigError
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.stats.multiple import holm
from replication.stats.outliers import flag_worse
from replication.verdicts import (
    CONTRADICTED, EQUIVALENT, NOT_JUDGED, REPRODUCED, Judgement, Settings, claim_margin, combine, judge, t_pvalue,
)

REGISTRY = Path(__file__).with_name("claims.yaml")
SYNTHETIC = "synthetic"
MEASURES = ("difference", "gap_change", "concentration")
CONFIGURED, PER_TASK = "configured", "per_task"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    source: str
    statement: str
    family: str
    measure: Mapping[str, Mapping[str, Any]] | None = None  # {kind: spec}
    effect: Mapping[str, Any] | None = None
    all_of: tuple[str, ...] = ()
    analog: bool = False
    note: str = ""

    @property
    def kind(self) -> str | None:
        return None if self.measure is None else next(iter(self.measure))

    @property
    def spec(self) -> Mapping[str, Any]:
        return {} if self.measure is None else self.measure[self.kind]

    @property
    def models(self) -> tuple[str, str]:
        return self.spec["a"], self.spec["b"]

    @property
    def metric(self) -> str:
        if self.kind == "concentration":
            return "concentration"
        return "mse" if self.spec["data"] == SYNTHETIC else "auc"


@dataclass(frozen=True)
class Registry:
    families: dict[str, str]  # family -> title
    claims: tuple[Claim, ...]

    def family(self, name: str) -> list[Claim]:
        return [c for c in self.claims if c.family == name]


def load_registry(path: Path = REGISTRY, paper: pd.DataFrame | None = None) -> Registry:
    """The registry, checked: unique ids, known families and measures, parts that exist in the same
    family, and effect filters that select at least one of the paper's printed values."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read the claims registry {path}: {error}") from error
    families = {name: spec["title"] for name, spec in (raw.get("families") or {}).items()}
    claims: list[Claim] = []
    for entry in raw.get("claims") or []:
        where = f"{path}: claim {entry.get('id', '?')!r}"
        claim = Claim(**{**entry, "all_of": tuple(entry.get("all_of", ()))})
        if claim.id in {c.id for c in claims}:
            raise ConfigError(f"{where}: the id is used twice")
        if claim.family not in families:
            raise ConfigError(f"{where}: family {claim.family!r} is not among {sorted(families)}")
        if (claim.measure is None) == (not claim.all_of):
            raise ConfigError(f"{where}: give either a measure or all_of (the claims it is made of)")
        if claim.measure is not None and (len(claim.measure) != 1 or claim.kind not in MEASURES):
            raise ConfigError(f"{where}: the measure must be one of {MEASURES}")
        for part in claim.all_of:
            if part not in {c.id for c in claims if c.family == claim.family and c.measure is not None}:
                raise ConfigError(f"{where}: part {part!r} must be a measured claim listed before it in the same family")
        claims.append(claim)
    registry = Registry(families, tuple(claims))
    if paper is not None:
        for claim in registry.claims:
            paper_effect(claim, paper)
    return registry


def _printed(paper: pd.DataFrame, where: Mapping[str, Any], claim: Claim) -> float:
    rows = paper
    for key, value in where.items():
        rows = rows[rows[key] == value]
    if rows.empty:
        raise ConfigError(f"claim {claim.id!r}: its effect filter {dict(where)} selects none of paper_values.yaml's values")
    return float(rows["value"].mean())


def paper_effect(claim: Claim, paper: pd.DataFrame) -> float | None:
    """The paper's own effect for ``claim`` from the printed values (``aggregate.paper_values()``'s
    table), on the claim's oriented scale; None where the paper prints none."""
    if claim.effect is None:
        return None
    if "value" in claim.effect:
        return _printed(paper, claim.effect["value"], claim)
    first, second = claim.effect["minus"]
    return _printed(paper, first, claim) - _printed(paper, second, claim)


# ---------------------------------------------------------------------------------------------
# Observations


def data_key(record: Mapping[str, Any]) -> tuple[str, float]:
    """(data, correlation) of a run: ``census/<task group>`` (NaN correlation) or ``synthetic`` and
    its correlation."""
    if record["dataset"] == SYNTHETIC:
        from replication.data.synthetic import correlation_of

        return SYNTHETIC, correlation_of(record["task_group"])
    return f"census/{record['task_group']}", np.nan


def observations(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (data, correlation, model, seed, task, selection) of the finished runs: the test
    score and the validation score at the selected epoch, both oriented larger-is-better. Selection
    ``configured`` is the run's own rule; ``per_task`` reads each task at its own best validation
    epoch (the record's ``per_task_selection``, or the run itself where it already selects per task)."""
    rows = []
    for r in records:
        data, correlation = data_key(r)
        for selection, picked in ((CONFIGURED, r), (PER_TASK, r.get("per_task_selection", r))):
            for task in r["tasks"]:
                metric = METRIC_FOR_TASK_TYPE[task["type"]]
                name = task["name"]
                rows.append({"data": data, "correlation": correlation, "model": r["model"], "seed": int(r["seed"]),
                             "task": name, "metric": metric.name, "selection": selection,
                             "score": metric.score(picked["test"][name][metric.name]),
                             "validation": _validation_score(picked, name, metric)})
    columns = ["data", "correlation", "model", "seed", "task", "metric", "selection", "score", "validation"]
    return pd.DataFrame(rows, columns=columns)


def _validation_score(picked: Mapping[str, Any], task: str, metric) -> float:
    """The validation score at the selected epoch, oriented; NaN for a record that carries none (the
    flagged-run rule then passes it over)."""
    value = (picked.get("validation") or {}).get(task, {}).get(metric.name)
    return np.nan if value is None else metric.score(value)


def concentration(mean_weights: Sequence[float]) -> float:
    """How much of a gate's (row-averaged) weight sits on its favourite expert, on a 0-1 scale:
    ``(max - 1/n) / (1 - 1/n)``, 0 when spread evenly over its n experts, 1 when all on one."""
    w = np.asarray(mean_weights, dtype=float)
    n = w.size
    return float((w.max() - 1 / n) / (1 - 1 / n)) if n > 1 else 1.0


def gate_observations(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per gated run: the mean over its gates of :func:`concentration` of their mean weights
    on the test rows (the numbers PLE Fig. 8 draws)."""
    rows = []
    for r in records:
        gates = r.get("gates_test") or {}
        if not gates:
            continue
        data, correlation = data_key(r)
        rows.append({"data": data, "correlation": correlation, "model": r["model"], "seed": int(r["seed"]),
                     "task": "gates", "metric": "concentration", "selection": CONFIGURED,
                     "score": float(np.mean([concentration(g["mean"]) for g in gates.values()])), "validation": np.nan})
    return pd.DataFrame(rows, columns=["data", "correlation", "model", "seed", "task", "metric", "selection", "score",
                                       "validation"])


def flagged_runs(obs: pd.DataFrame, rate: float) -> pd.DataFrame:
    """The runs (data, correlation, model, seed) whose validation score on some task lies far below
    the median of the model's seeds there (configured selection): :func:`flag_worse` at false-flag
    ``rate`` per cell."""
    scored = obs[(obs["selection"] == CONFIGURED) & obs["validation"].notna()]
    flagged = []
    for _, cell in scored.groupby(["data", "correlation", "model", "task"], dropna=False):
        mask = flag_worse(cell["validation"].to_numpy(), rate)
        flagged.append(cell.loc[mask, ["data", "correlation", "model", "seed", "task"]])
    if not flagged:
        return pd.DataFrame(columns=["data", "correlation", "model", "seed", "task"])
    return pd.concat(flagged, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Per-seed values of a claim


def _cells(obs: pd.DataFrame, spec: Mapping[str, Any], model: str, correlations: Sequence[float] | None) -> pd.Series:
    """Model's per-seed mean score over the spec's tasks (and correlations); only seeds that have
    every cell. Empty when the model has no such runs."""
    here = obs[(obs["model"] == model) & obs["task"].isin(spec.get("tasks", ["gates"]))]
    here = here[here["data"] == spec["data"]]
    if correlations is not None:
        here = here[here["correlation"].isin(correlations)]
        cells = len(spec.get("tasks", ["gates"])) * len(correlations)
    else:
        cells = len(spec.get("tasks", ["gates"]))
    counts = here.groupby("seed")["score"].count()
    means = here.groupby("seed")["score"].mean()
    return means[counts == cells]


def claim_values(claim: Claim, obs: pd.DataFrame) -> pd.Series | None:
    """The claim's per-seed values (index: seed), oriented so that the claim says positive; None
    when a model it names has no runs here (its family cannot be judged)."""
    spec = claim.spec
    a, b = claim.models
    if claim.kind == "gap_change":
        sides = {}
        for end in ("low", "high"):
            left, right = _cells(obs, spec, a, [spec[end]]), _cells(obs, spec, b, [spec[end]])
            if left.empty or right.empty:
                return None
            sides[end] = (left - right).dropna()
        values = (sides["low"] - sides["high"]).dropna()
    else:
        correlations = spec.get("correlations")
        left, right = _cells(obs, spec, a, correlations), _cells(obs, spec, b, correlations)
        if left.empty or right.empty:
            return None
        values = (left - right).dropna()
    return values.sort_index() if len(values) >= 2 else None


# ---------------------------------------------------------------------------------------------
# Judging


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    effect: float | None
    verdict: str
    judgement: Judgement | None = None
    pvalue: float = np.nan
    p_holm: float = np.nan
    seeds: tuple[int, ...] = ()
    why_not_judged: str = ""
    variants: dict[str, str] = field(default_factory=dict)  # variant -> verdict where it differs
    spread: tuple[float, float] | None = None  # lowest and highest mean score of the family's models here
    alpha: float = 0.05  # the family's level and size, for the evidence line
    family_size: int = 1
    parts: dict[str, str] = field(default_factory=dict)  # a claim made of parts: each part's verdict

    def reading(self, digits: int = 5) -> str:
        """What the evidence can and cannot say, in one line a reader understands."""
        c, j = self.claim, self.judgement
        if self.why_not_judged:
            return self.why_not_judged
        prefix = "By analogy (the paper's claim is on industrial data). " if c.analog else ""
        fmt = f"{{:+.{digits}f}}"
        if j is None:  # made of parts
            return prefix + "Holds when every part is reproduced: " + "; ".join(
                f"{part} {verdict}" for part, verdict in self.parts.items()) + "."
        ceiling = ""
        if self.spread is not None and self.spread[1] - self.spread[0] < j.margin:
            ceiling = (f" {'/'.join(c.spec['tasks'])} {c.metric.upper()} is at its ceiling here (every model of this "
                       f"family within {self.spread[1] - self.spread[0]:.{digits}f} of each other, less than the margin "
                       f"{j.margin:g}): this test cannot separate the models by less than that.")
        effect = "" if self.effect is None else fmt.format(self.effect)
        if self.verdict == REPRODUCED:
            if self.effect is None:
                text = "In the claimed direction and significant."
            elif self.effect > j.family_high:
                text = f"In the claimed direction, but smaller than the paper's {effect} (above our family-wise interval)."
            elif self.effect < j.family_low:
                text = f"In the claimed direction, and larger than the paper's {effect}."
            else:
                text = f"In the claimed direction, and consistent with the paper's {effect}."
        elif self.verdict == CONTRADICTED:
            text = (f"The data exclude the paper's effect: {effect} lies above our family-wise interval "
                    f"[{fmt.format(j.family_low)}, {fmt.format(j.family_high)}]." if self.effect is not None else
                    "Significant in the opposite direction.")
            if self.effect is not None and j.mean < 0 and self.p_holm < self.alpha:
                text += f" The difference is significant the other way (Holm p = {self.p_holm:.3g})."
            elif j.tost_pvalue < self.alpha / self.family_size:
                text += f" Any difference lies within ±{j.margin:g} (TOST p = {j.tost_pvalue:.3g})."
        elif self.verdict == EQUIVALENT:
            text = f"Any effect lies within ±{j.margin:g} (TOST at the family's level)."
        else:
            text = (f"About {j.seeds_needed} seeds would decide it at the observed spread (a paired t-test at the family's level with the wanted power)."
                    if j.seeds_needed else "No practical number of seeds decides it at the observed spread.")
        return prefix + text + ceiling + _variants_text(self.variants)


def _variants_text(variants: Mapping[str, str]) -> str:
    """The variants that change a verdict, in words: one seed left out ("Fragile: ..."), then the
    other selection rule and the runs without flagged ones."""
    seeds = {k: v for k, v in variants.items() if k.startswith("without seed")}
    others = {k: v for k, v in variants.items() if k not in seeds}
    parts = []
    if seeds:
        parts.append("Fragile: " + "; ".join(f"{k} it reads {v}" for k, v in seeds.items()) + ".")
    parts += [f"With {k}: {v}." for k, v in others.items()]
    return (" " + " ".join(parts)) if parts else ""


def family_spread(claims: list[Claim], obs: pd.DataFrame, claim: Claim) -> tuple[float, float] | None:
    """Lowest and highest mean score over seeds, on ``claim``'s data and tasks, among the models the
    family names (a set the registry fixes, so every report computes the same)."""
    if claim.kind != "difference" or claim.spec["data"] == SYNTHETIC:
        return None
    models = {m for c in claims if c.measure is not None for m in c.models}
    here = obs[obs["model"].isin(models) & (obs["data"] == claim.spec["data"]) & obs["task"].isin(claim.spec["tasks"])]
    means = here.groupby("model")["score"].mean()
    return (float(means.min()), float(means.max())) if len(means) >= 2 else None


def judge_family(claims: list[Claim], obs: pd.DataFrame, effects: Mapping[str, float | None],
                 settings: Settings) -> dict[str, ClaimResult]:
    """Every claim of one family judged together: Holm over its measured claims (all of them, or
    none: see the module docstring), then the parts-made claims from their parts."""
    measured = [c for c in claims if c.measure is not None]
    values = {c.id: claim_values(c, obs) for c in measured}
    missing = [c.id for c in measured if values[c.id] is None]
    if missing:
        why = f"{NOT_JUDGED}: no runs for {', '.join(missing)} (the family is judged only whole)"
        return {c.id: ClaimResult(c, effects.get(c.id), NOT_JUDGED, why_not_judged=why) for c in claims}
    pvalues = np.array([t_pvalue(values[c.id].to_numpy()) for c in measured])
    adjusted = holm(pvalues)
    results: dict[str, ClaimResult] = {}
    for c, p, p_adj in zip(measured, pvalues, adjusted):
        v = values[c.id]
        margin = claim_margin(c.metric, effects.get(c.id), settings)
        j = judge(v.to_numpy(), float(p_adj), effects.get(c.id), margin, len(measured), settings)
        results[c.id] = ClaimResult(c, effects.get(c.id), j.verdict, j, float(p), float(p_adj), tuple(int(s) for s in v.index),
                                    spread=family_spread(claims, obs, c), alpha=settings.alpha,
                                    family_size=len(measured))
    for c in claims:
        if c.all_of:
            parts = {part: results[part].verdict for part in c.all_of}
            results[c.id] = ClaimResult(c, None, combine(list(parts.values())), parts=parts)
    return results


def _without(obs: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``obs`` less every run (data, correlation, model, seed) listed in ``runs``."""
    if runs.empty:
        return obs
    keys = runs[["data", "correlation", "model", "seed"]].drop_duplicates()
    merged = obs.merge(keys.assign(_drop=True), on=["data", "correlation", "model", "seed"], how="left")
    return obs[merged["_drop"].isna().to_numpy()]


def _judge_all(registry: Registry, obs: pd.DataFrame, effects: Mapping[str, float | None],
               settings: Settings) -> dict[str, ClaimResult]:
    results: dict[str, ClaimResult] = {}
    for family in registry.families:
        results |= judge_family(registry.family(family), obs, effects, settings)
    return results


def judge_claims(records: Sequence[Mapping[str, Any]], settings: Settings = Settings(),
                 registry: Registry | None = None) -> tuple[list[ClaimResult], pd.DataFrame]:
    """Every registry claim judged on ``records`` (finished runs of any data sets), with its
    variants (module docstring); and the flagged runs."""
    from replication.aggregate import paper_values

    paper, _ = paper_values()
    registry = registry or load_registry(paper=paper)
    effects = {c.id: paper_effect(c, paper) for c in registry.claims}
    frames = [observations(records), gate_observations(records)]
    tidy = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True).astype(
        {"score": float, "validation": float, "seed": int})
    configured = tidy[tidy["selection"] == CONFIGURED]
    per_task = tidy[tidy["selection"] == PER_TASK]
    flagged = flagged_runs(tidy, settings.flag_rate)
    main = _judge_all(registry, configured, effects, settings)
    variants = {
        "without flagged runs": _judge_all(registry, _without(configured, flagged), effects, settings),
        "per-task selection": _judge_all(registry, pd.concat([per_task, configured[configured["task"] == "gates"]]),
                                         effects, settings),
    }
    for seed in sorted(configured["seed"].unique()):
        variants[f"without seed {seed}"] = _judge_all(registry, configured[configured["seed"] != seed], effects, settings)
    out = []
    for claim in registry.claims:
        result = main[claim.id]
        if result.verdict != NOT_JUDGED:
            changed = {name: other[claim.id].verdict for name, other in variants.items()
                       if other[claim.id].verdict not in (result.verdict, NOT_JUDGED)}
            result = replace(result, variants=changed)
        out.append(result)
    return out, flagged


# ---------------------------------------------------------------------------------------------
# Settings and Markdown


DEFAULT_PARAMS = Path("params.yaml")


def load_settings(params_file: Path | str | None = None) -> Settings:
    """The rule's parameters from a parameter file's ``verdicts`` section (the rule's defaults for
    keys it lacks). ``None``: ``params.yaml`` here if there is one, else the defaults, said on stderr."""
    from replication.config import from_mapping, load_params
    from replication.progress import log

    if params_file is None:
        if not DEFAULT_PARAMS.is_file():
            log(f"no {DEFAULT_PARAMS} here: claims judged with the rule's default parameters (--params to give a file)")
            return Settings()
        params_file = DEFAULT_PARAMS
    given = dict(load_params(params_file).get("verdicts") or {})
    if isinstance(given.get("margins"), dict):  # a margin given for one metric keeps the others' defaults
        given["margins"] = {**Settings().margins, **given["margins"]}
    return from_mapping(Settings, given, "verdicts")


def _number(value: float | None, digits: int) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:+.{digits}f}"


def claims_markdown(results: Sequence[ClaimResult], registry: Registry | None = None, families: Iterable[str] | None = None,
                    digits: int = 5) -> list[str]:
    """One Markdown table per claims family: the claim, our mean difference with its 95% interval,
    the paper's effect, the family's Holm-adjusted p, the verdict and what the evidence can say."""
    registry = registry or load_registry()
    wanted = list(families) if families is not None else list(registry.families)
    lines: list[str] = []
    for family in wanted:
        here = [r for r in results if r.claim.family == family]
        if not here:
            continue
        measured = sum(1 for r in here if r.claim.measure is not None)
        lines += [f"### {registry.families[family]}", "",
                  f"Family `{family}`: {measured} tests, Holm's correction over them.", "",
                  "| claim | source | ours: mean [95% CI] (seeds) | paper | p (Holm) | verdict | what the evidence says |",
                  "|---|---|---|---|---|---|---|"]
        for r in here:
            j = r.judgement
            ours = "" if j is None else (f"{_number(j.mean, digits)} [{_number(j.low, digits)}, "
                                         f"{_number(j.high, digits)}] ({j.n})")
            p = "" if not np.isfinite(r.p_holm) else f"{r.p_holm:.3g}"
            lines.append(f"| {r.claim.statement} | {r.claim.paper} {r.claim.source} | {ours} | "
                         f"{_number(r.effect, 4)} | {p} | **{r.verdict}** | {r.reading(digits)} |")
        lines.append("")
    return lines


def flagged_markdown(flagged: pd.DataFrame) -> list[str]:
    """The flagged runs as a Markdown list (empty: one line saying none was)."""
    if flagged.empty:
        return ["No run was flagged: every run's validation score lies within the rule's reach of its model's other seeds."]
    lines = []
    for (data, correlation, model, seed), tasks in flagged.groupby(["data", "correlation", "model", "seed"], dropna=False):
        where = data if pd.isna(correlation) else f"{data} p = {correlation:g}"
        lines.append(f"- {where}: {model} seed {seed} (validation {', '.join(sorted(tasks['task']))})")
    return lines
