"""The papers' figures as :class:`Drawing` objects: what each figure shows, computed from the checked
inputs (PLE Figs. 3, 7, 8; MMoE Figs. 3-4), and its caption. The drawing itself is
:mod:`replication.figures` (functions of computed numbers that return a matplotlib Figure); saving is
the writer's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication import figures
from replication.config import ConfigError
from replication.report.inputs import (
    FIG7_PAPER_COLUMN, SyntheticSize, count_range, metric_of, reference_model, seed_count, sweep_reference, tasks_of,
)
from replication.report.tables import wide


@dataclass
class Drawing:
    """A figure; ``data``, where given, is the tidy table it was drawn from (written as ``stem.csv``)."""

    stem: str
    caption: str
    figure: Figure
    data: pd.DataFrame | None = None


# The seesaw figure is PLE's scatter (one point per model) up to this many models; beyond it, with the
# zoo's twelve, labels collide and colours repeat, so it is a forest plot (figures.forest).
SEESAW_SCATTER_MAX = 6
# The size of PLE's synthetic data, against which its Fig. 7 bars were measured (PLE Sec. 5.2.1: 1.4
# million rows per correlation, d = 512); ours is read from the data's schema (--synthetic-data).
PLE_SYNTHETIC_SIZE = SyntheticSize(rows=1_400_000, dim=512)
# MMoE Fig. 4: its correlations, and the models it compares (Shared-Bottom, OMoE, MMoE) plus PLE; of
# these, the ones that were run are drawn.
CURVE_CORRELATIONS = (0.5, 0.9, 1.0)  # the MMoE paper's correlations (Figs. 3-5; ../shared/PAPER.md)
CURVE_MODELS = ("shared_bottom", "omoe", "mmoe", "ple")


def seesaw_points(census: pd.DataFrame) -> pd.DataFrame:
    """Per model with MTL gains (not the reference): the first task's gain and interval as x, the
    second's as y."""
    tasks = tasks_of(census)
    if len(tasks) != 2:
        raise ConfigError(f"the seesaw figure needs exactly two tasks; the census table has {tasks}")
    gains = wide(census[census["mtl_gain"].notna()], ["mtl_gain", "mtl_gain_low", "mtl_gain_high"], tasks)
    return pd.DataFrame({"model": gains["model"], **{
        f"{axis}{suffix}": gains[f"{task}_mtl_gain{suffix}"]
        for axis, task in zip("xy", tasks) for suffix in ("", "_low", "_high")}}).dropna()


def seesaw_gains(census: pd.DataFrame) -> pd.DataFrame:
    """Per model with MTL gains (not the reference) and task: ``model, task, gain, low, high``."""
    gains = census[census["mtl_gain"].notna()]
    return pd.DataFrame({"model": gains["model"], "task": gains["task"], "gain": gains["mtl_gain"],
                         "low": gains["mtl_gain_low"], "high": gains["mtl_gain_high"]}).dropna().reset_index(drop=True)


def seesaw_figure(census: pd.DataFrame) -> Drawing:
    """PLE Fig. 3: PLE's scatter of each model's two MTL gains for up to ``SEESAW_SCATTER_MAX`` models
    (the paper's form, the trade-off at a glance), a forest plot of the gains beyond (labels and
    colours of a dozen points in one scatter collide)."""
    tasks, metric = tasks_of(census), metric_of(census)
    reference = figures.model_style(reference_model(census)).label
    labels = [f"{task}: MTL gain in test {metric} (model − {reference})" for task in tasks]
    points = seesaw_points(census)
    if len(points) <= SEESAW_SCATTER_MAX:
        figure = figures.seesaw(points, *labels, quadrant_label=f"better than {reference}\non both tasks")
        caption = (f"PLE Fig. 3 (seesaw): each model's MTL gain on {tasks[0]} (x) against {tasks[1]} (y), census test "
                   f"{metric}, mean over {seed_count(census)} seeds paired with {reference}; bars: 95% t intervals. The "
                   "shaded quadrant is better than the reference on both tasks.")
        return Drawing("fig3_seesaw", caption, figure)
    figure = figures.forest(seesaw_gains(census), tasks, [f"MTL gain in test {metric}\n(model − {reference})"] * len(tasks))
    caption = (f"PLE Fig. 3 (seesaw) as a forest plot, for its {len(points)} models: each model's MTL gain on each task "
               f"(one panel per task, one row per model), census test {metric}, mean over {seed_count(census)} seeds "
               f"paired with {reference}; bars: 95% t intervals; the vertical line is {reference}'s level. A model right "
               f"of the line in both panels is better than {reference} on both tasks; more than {SEESAW_SCATTER_MAX} "
               "models would crowd PLE's scatter of one point per model.")
    return Drawing("fig3_seesaw", caption, figure)


def fig7_bars(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per (correlation, MTL model, task): our MTL gain with its interval and the paper's bar."""
    gains = sweep[sweep["gain"].notna()]
    paper = gains[FIG7_PAPER_COLUMN] if FIG7_PAPER_COLUMN in gains.columns else np.nan
    return pd.DataFrame({"correlation": gains["correlation"], "model": gains["model"], "task": gains["task"],
                         "gain": gains["gain"], "low": gains["gain_low"], "high": gains["gain_high"], "paper": paper})


def fig7_figure(sweep: pd.DataFrame, size: SyntheticSize | None = None) -> Drawing:
    """PLE Fig. 7: our MTL gains by correlation beside the paper's bars. Its title, legend and caption
    say that the two come from data of different sizes: ours of ``size`` (read from the data's
    schema; unknown without --synthetic-data), the paper's of ``PLE_SYNTHETIC_SIZE``."""
    metric = metric_of(sweep)
    reference = figures.model_style(sweep_reference(sweep)).label
    ours = f"our data: {size}" if size else "our data's size: not given (--synthetic-data)"
    figure = figures.correlation_gain_bars(fig7_bars(sweep), tasks_of(sweep),
                                           y_label=f"MTL gain on test {metric}\n({reference} − model; > 0 better)",
                                           paper_label=f"paper (read off Fig. 7; {PLE_SYNTHETIC_SIZE})",
                                           title=f"Different data sizes: {ours}; the paper's: {PLE_SYNTHETIC_SIZE}")
    caption = (f"PLE Fig. 7: MTL gain on test {metric} by task correlation, synthetic data "
               + (f"of {size} (each data set's schema)" if size else "(its size not given: pass --synthetic-data)")
               + f", mean over {seed_count(sweep)} seeds paired with {reference}, with 95% t intervals; hatched: the PLE "
               f"paper's bars read off its Fig. 7 (±0.0005), where it has one, measured on data of {PLE_SYNTHETIC_SIZE} "
               "(PLE Sec. 5.2.1). The data sizes differ, so the paper's bars are a reference for direction and "
               "rough size, not a target ours should match.")
    return Drawing("fig7_correlation_gain", caption, figure)


def loss_by_correlation(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per (correlation, model): the test metric averaged over tasks, and the average of the tasks'
    95% t intervals. With the same seeds for every task this interval is at least as wide as the t
    interval of the per-seed task average (the standard deviation of a mean is at most the mean of
    the standard deviations), so it is conservative."""
    counts = sweep.groupby(["correlation", "model"])["n_seeds"].nunique()
    if (counts > 1).any():
        correlation, model = counts[counts > 1].index[0]
        raise ConfigError(f"the sweep table has different seed counts across tasks for {model} at p = {correlation:g}; "
                          "regenerate it with `python -m replication sweep`")
    lines = sweep.groupby(["correlation", "model"], as_index=False).agg(
        value=("mean", "mean"), low=("t_low", "mean"), high=("t_high", "mean"))
    return lines


def loss_figure(sweep: pd.DataFrame) -> Drawing:
    metric = metric_of(sweep)
    figure = figures.loss_vs_correlation(loss_by_correlation(sweep), y_label=f"test {metric}, mean over tasks",
                                         interval_label="bars: mean of the tasks' 95% t intervals")
    caption = (f"MMoE Figs. 3-4 style: test {metric} (mean over the tasks) against task correlation, one line per "
               f"model, mean over {seed_count(sweep)} seeds; error bars: the mean of the tasks' 95% t intervals "
               "(conservative). Lower is better.")
    return Drawing("mmoe_fig3_loss_vs_correlation", caption, figure)


def training_curves(records: list[dict]) -> pd.DataFrame:
    """One row per (correlation, model, seed, epoch) of every record's training history: the epoch's
    training loss (the joint loss, averaged over the epoch's batches) and each task's validation
    metric after it (``validation_<task>_<metric>``). Records of a failed run are left out, as the
    tables leave them out. ``records`` carry their data set's ``correlation``."""
    rows = []
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        if not r.get("history"):
            raise ConfigError(f"run record {r.get('source', r['model'])} has no training history; records of "
                              "`python -m replication train` carry one: retrain it")
        for h in r["history"]:
            rows.append({"correlation": r["correlation"], "model": r["model"], "seed": r["seed"], "epoch": h["epoch"],
                         "train_loss": h["train_loss"],
                         **{f"validation_{task}_{metric}": value for task, metrics in h["validation"].items()
                            for metric, value in metrics.items()}})
    if not rows:
        raise ConfigError("no successful run records with a training history under --synthetic-runs")
    curves = pd.DataFrame(rows)
    order = curves["model"].map(lambda m: figures.model_style(m).order)
    return (curves.assign(order=order).sort_values(["correlation", "order", "model", "seed", "epoch"])
            .drop(columns="order").reset_index(drop=True))


def mean_curves(curves: pd.DataFrame, min_share: float = 1.0) -> pd.DataFrame:
    """Per (correlation, model, epoch): the seeds still training at that epoch (``n_seeds``, of
    ``n_total``) and the mean, median and sample std of their training loss. Seeds stop at different epochs
    (early stopping), so each epoch's mean is over the seeds that reached it; epochs at which fewer
    than ``min_share`` of the model's seeds still train are dropped."""
    means = curves.groupby(["correlation", "model", "epoch"], as_index=False, sort=False).agg(
        n_seeds=("seed", "nunique"), mean=("train_loss", "mean"), median=("train_loss", "median"),
        std=("train_loss", lambda v: v.std(ddof=1) if len(v) > 1 else np.nan))
    total = curves.groupby(["correlation", "model"])["seed"].nunique().rename("n_total").reset_index()
    means = means.merge(total, on=["correlation", "model"])
    keep = means["n_seeds"] >= min_share * means["n_total"]
    return means.loc[keep, ["correlation", "model", "epoch", "n_seeds", "n_total", "mean", "median", "std"]].reset_index(drop=True)


def curves_figure(records: list[dict]) -> Drawing:
    """MMoE Fig. 4 style: training curves at the MMoE paper's correlations, for the models it compares
    (and PLE), from the synthetic run records; the tidy curves table is written beside the figure."""
    every = training_curves(records)
    correlations = [p for p in CURVE_CORRELATIONS if p in set(every["correlation"])]
    models = [m for m in CURVE_MODELS if m in set(every["model"])]
    if not correlations or not models:
        raise ConfigError(f"--synthetic-runs has no runs of {', '.join(CURVE_MODELS)} at the MMoE paper's correlations "
                          f"({', '.join(f'{p:g}' for p in CURVE_CORRELATIONS)}); it has correlations "
                          f"{', '.join(f'{p:g}' for p in sorted(set(every['correlation'])))} and models "
                          f"{', '.join(figures.ordered_models(every['model']))}")
    curves = every[every["correlation"].isin(correlations) & every["model"].isin(models)].dropna(axis=1, how="all")
    curves = curves.reset_index(drop=True)
    stops = curves.groupby(["correlation", "model", "seed"])["epoch"].max()
    seeds = curves.groupby(["correlation", "model"])["seed"].nunique()
    # The median, not the mean: a few slow seeds (PLE at p = 0.5 and 0.9, MMoE at p = 1: 2 of 10 train
    # for up to 277 epochs) lift a mean far above the other eight. It is drawn while every seed still
    # trains: a statistic over only the seeds still training rises each time a fast-converging seed stops (with min_share 0.5, PLE's at p = 0.5 went from 0.17 at
    # epoch 32 to 0.25 at epoch 35 as four of its ten seeds stopped); past the first stop only single
    # seeds are drawn.
    figure = figures.training_curves(
        curves, mean_curves(curves, min_share=1.0), y_label="training loss (sum of the tasks' MSE)",
        mean_label="median over all seeds, until the first one stops", seed_label="one seed (dot: its last epoch)")
    names = ", ".join(figures.model_style(m).label for m in figures.ordered_models(models))
    caption = (f"MMoE Fig. 4 style: training loss against epoch on the synthetic data, one panel per correlation of the "
               f"MMoE paper's set that was run (p = {', '.join(f'{p:g}' for p in correlations)}), one colour per model "
               f"({names}; {count_range(seeds)} seeds each). The loss is the joint training loss, the sum of the two "
               "tasks' MSE, averaged over each epoch's batches; log scale. Thin lines: single seeds, each ending (dot) "
               f"where early stopping ended it (epochs {int(stops.min())}-{int(stops.max())}). Bold lines: the median "
               "over all of the model's seeds (a mean would follow the few slow seeds), drawn up to the epoch at which "
               "its first seed stops; a statistic over only the seeds still training would rise each time a fast-converging seed stopped, so past that point only "
               "single seeds are drawn. The MMoE paper averages runs of a fixed length instead.")
    return Drawing("mmoe_fig4_training_curves", caption, figure, data=curves)


def expert_usage(experts: pd.DataFrame) -> pd.DataFrame:
    """Per (model, level, gate, expert): the mean over seeds of each seed's mean gate weight, and the
    mean over seeds of each seed's standard deviation over the test rows."""
    return experts.groupby(["model", "level", "gate", "expert", "expert_kind"], as_index=False, sort=False).agg(
        mean=("mean", "mean"), std=("std", "mean"), n_seeds=("seed", "nunique"))


def experts_figure(experts: pd.DataFrame, data: str = "census test data", stem: str = "fig8_expert_utilization") -> Drawing:
    figure = figures.expert_utilization(expert_usage(experts), y_label="gate weight on the test set")
    seeds = sorted(set(experts.groupby("model")["seed"].nunique()))
    caption = (f"PLE Fig. 8: expert utilization on {data}. Each panel is one gate; bars: the mean over "
               f"{'/'.join(map(str, seeds))} seeds of the gate's mean weight on each expert, error bars: the mean over "
               "seeds of its standard deviation over test rows. Experts of one kind are interchangeable between "
               "seeds (expert k of one seed is not expert k of another), so averaging over seeds spreads weight "
               "that a single run concentrates.")
    return Drawing(stem, caption, figure)


def synthetic_experts_figure(experts: pd.DataFrame) -> Drawing:
    """PLE Fig. 8 on one synthetic correlation (the runs `--synthetic-experts` was made from; the
    pipeline's `experts_synthetic` stage reads p = 0.5, the correlation both papers show)."""
    return experts_figure(experts, data="synthetic test data (one task correlation, p = 0.5 in the pipeline)",
                          stem="fig8_expert_utilization_synthetic")
