"""Drawing functions for the papers' figures (PLE Figs. 3, 7, 8; MMoE Figs. 3-4).

Each function takes numbers already computed (by :mod:`replication.report.drawings`, from the results
tables and run records) and returns a matplotlib :class:`~matplotlib.figure.Figure`; none computes a
statistic, reads a file or saves one. Figures are built without ``pyplot`` (no global figure state),
so they render with the Agg canvas whatever the backend. Every figure draws a model the same way
(:func:`model_style`): a colour from seaborn's colour-blind-safe palette, plus a marker, a hatch and a
line style, so that models stay apart where the palette's ten colours repeat (the zoo has thirteen).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import Bbox

# Display name of every registered model, in the order figures and tables list them: the five
# models of the default pipeline first, so that they get the palette's five most distinct colours.
MODEL_NAMES = {
    "single_task": "Single-Task", "shared_bottom": "Hard Sharing", "mmoe": "MMoE", "cgc": "CGC", "ple": "PLE",
    "omoe": "OMoE", "ml_mmoe": "ML-MMoE", "cross_stitch": "Cross-Stitch", "sluice": "Sluice Network",
    "asymmetric_sharing": "Asymmetric Sharing", "customized_sharing": "Customized Sharing",
    "l2_constrained": "L2-Constrained", "tensor_factorization": "Tensor-Factorization",
}
PALETTE = sns.color_palette("colorblind")
# One marker per registered model, so that markers alone tell the thirteen apart in point and line plots.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "d")
# Models past the palette's length reuse its colours; each further round of the palette gets the next
# hatch (bars) and line style (lines), so (colour, hatch) and (colour, line style) stay unique per model.
HATCHES = ("", "..", "xx", "++", "oo", "--", "**")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)))
PAPER_HATCH = "////"  # the papers' bars (fig. 7): white, hatched, edged in the model's colour
# Expert kinds (sorted: "shared", "task-specific"), in colours no model of Fig. 8 uses.
KIND_COLORS = (PALETTE[7], PALETTE[9], PALETTE[8], PALETTE[5])


@dataclass(frozen=True)
class ModelStyle:
    label: str
    color: tuple[float, float, float]
    marker: str
    hatch: str
    linestyle: str | tuple
    order: int


def model_style(model: str) -> ModelStyle:
    """The label, colour, marker, bar hatch, line style and sort position of ``model``: the same in
    every figure, whichever models a figure shows. The registered models' (colour, marker),
    (colour, hatch) and (colour, line style) are pairwise distinct, and so are their markers. A model
    missing from ``MODEL_NAMES`` gets a stable position from its name (and may look like another)."""
    names = list(MODEL_NAMES)
    index = names.index(model) if model in names else len(names) + zlib.crc32(model.encode()) % 70
    rounds = index // len(PALETTE)  # how many times the palette has been used up before this model
    return ModelStyle(label=MODEL_NAMES.get(model, model), color=PALETTE[index % len(PALETTE)],
                      marker=MARKERS[index % len(MARKERS)], hatch=HATCHES[rounds % len(HATCHES)],
                      linestyle=LINESTYLES[rounds % len(LINESTYLES)], order=index)


def ordered_models(models: Sequence[str]) -> list[str]:
    """The distinct ``models`` in display order."""
    return sorted(set(models), key=lambda m: (model_style(m).order, m))


def seesaw(points: pd.DataFrame, x_label: str, y_label: str, quadrant_label: str) -> Figure:
    """PLE Fig. 3: one point per model at its (task-1, task-2) MTL gain, with the 95% intervals as
    error bars, lines at zero (the reference's level) and the quadrant better on both tasks shaded.

    ``points``: one row per model with ``model, x, x_low, x_high, y, y_low, y_high``.
    """
    fig = Figure(figsize=(7.5, 6.2), layout="constrained")
    ax = fig.add_subplot()
    for row in points.itertuples(index=False):
        style = model_style(row.model)
        ax.errorbar([row.x], [row.y], xerr=[[row.x - row.x_low], [row.x_high - row.x]],
                    yerr=[[row.y - row.y_low], [row.y_high - row.y]], fmt="none", ecolor=style.color,
                    elinewidth=1.2, capsize=3, alpha=0.8)
        ax.scatter([row.x], [row.y], s=70, color=style.color, marker=style.marker, edgecolor="black",
                   linewidth=0.6, zorder=3, label=style.label)
    # Limits hold every interval and zero, with room on the positive side for the shaded quadrant.
    xs = np.r_[points["x_low"], points["x_high"], 0.0]
    ys = np.r_[points["y_low"], points["y_high"], 0.0]
    x_pad, y_pad = 0.1 * (np.ptp(xs) or 1e-4), 0.1 * (np.ptp(ys) or 1e-4)
    x_max, y_max = max(xs.max(), 0.25 * np.ptp(xs)) + x_pad, max(ys.max(), 0.25 * np.ptp(ys)) + y_pad
    ax.set_xlim(xs.min() - x_pad, x_max)
    ax.set_ylim(ys.min() - y_pad, y_max)
    ax.add_patch(Rectangle((0, 0), x_max, y_max, facecolor="0.85", edgecolor="none", zorder=0))
    ax.text(x_max * 0.97, y_max * 0.97, quadrant_label, ha="right", va="top", fontsize=9)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.ticklabel_format(style="sci", scilimits=(-2, 2), useMathText=True)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    _label_points(ax, points["x"].to_numpy(), points["y"].to_numpy(), [model_style(m).label for m in points["model"]])
    return fig


def forest(gains: pd.DataFrame, tasks: Sequence[str], x_labels: Sequence[str]) -> Figure:
    """PLE Fig. 3 as a forest plot, for many models: one panel per task, one row per model (display
    order, top down) at its MTL gain with its 95% interval, and a vertical line at 0 (the reference's
    level). Rows line up across panels, so a model's seesaw reads along its row: right of the line in
    every panel is better than the reference on every task. Unlike the scatter, no label can collide
    and no two models share a row, however many there are.

    ``gains``: one row per (model, task) with ``gain, low, high``; ``x_labels``: one per task.
    """
    models = ordered_models(gains["model"])
    fig = Figure(figsize=(3.8 * len(tasks) + 1.6, 0.36 * len(models) + 1.4), layout="constrained")
    axes = fig.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
    rows = dict(zip(models, range(len(models) - 1, -1, -1)))  # the first model on top
    for ax, task, x_label in zip(axes, tasks, x_labels):
        for r in gains[gains["task"] == task].itertuples(index=False):
            style = model_style(r.model)
            ax.errorbar([r.gain], [rows[r.model]], xerr=[[r.gain - r.low], [r.high - r.gain]], fmt=style.marker,
                        color=style.color, markeredgecolor="black", markersize=7, elinewidth=1.4, capsize=3,
                        label=style.label)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(task)
        ax.set_xlabel(x_label)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2), useMathText=True)
        ax.grid(True, axis="x", linewidth=0.4, alpha=0.5)
    axes[0].set_yticks(list(rows.values()), [model_style(m).label for m in rows])
    axes[0].set_ylim(-0.7, len(models) - 0.3)
    return fig


# Where a point's label may go, in points from the point (tried in this order): beside it first, then
# above and below, farther out; the first place that overlaps no other label and no point is taken.
LABEL_OFFSETS = tuple((dx, dy) for dy in (6, -16, 18, -28, 30, -40) for dx in (6, -6))


def _label_points(ax, xs: np.ndarray, ys: np.ndarray, labels: Sequence[str], marker_area: float = 70) -> None:
    """Annotate each point with its label at the first of ``LABEL_OFFSETS`` that overlaps no label
    placed before it and no point (a marker of ``marker_area`` square points); where every place
    overlaps, at the first. Runs the layout first, so that the positions measured are final."""
    fig = ax.get_figure()
    FigureCanvasAgg(fig)  # a renderer to measure text with; saving still picks the canvas per format
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    radius = np.sqrt(marker_area) / 2 * fig.dpi / 72  # pixels
    dots = [Bbox.from_bounds(x - radius, y - radius, 2 * radius, 2 * radius)
            for x, y in ax.transData.transform(np.c_[xs, ys])]
    placed: list[Bbox] = []

    def place(label: str, x: float, y: float, dx: float, dy: float):
        text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=10,
                           ha="left" if dx > 0 else "right")
        text.set_in_layout(False)
        return text, text.get_window_extent(renderer)

    for x, y, label in zip(xs, ys, labels):
        for dx, dy in LABEL_OFFSETS:
            text, box = place(label, x, y, dx, dy)
            if not any(box.overlaps(b) for b in placed + dots):
                break
            text.remove()
        else:
            text, box = place(label, x, y, *LABEL_OFFSETS[0])
        placed.append(box)


def correlation_gain_bars(bars: pd.DataFrame, tasks: Sequence[str], y_label: str, paper_label: str,
                          title: str = "") -> Figure:
    """PLE Fig. 7: MTL gain by task correlation, one panel per task, one bar per model in each
    correlation's group, with its 95% interval; beside it, hatched, the paper's bar where it has one.
    ``title`` (if given) heads the figure: the place to say what differs between our bars and the paper's.

    ``bars``: one row per (correlation, model, task) with ``gain, low, high, paper`` (``paper`` NaN
    where the paper shows no bar).
    """
    correlations = sorted(bars["correlation"].unique())
    models = ordered_models(bars["model"])
    with_paper = [m for m in models if bars.loc[bars["model"] == m, "paper"].notna().any()]
    slots = [(m, False) for m in models] + [(m, True) for m in with_paper]
    slots.sort(key=lambda s: (models.index(s[0]), s[1]))  # each model's paper bar right after its own
    width = 0.8 / len(slots)
    fig = Figure(figsize=(min(14.0, 4.0 + 1.2 * len(correlations) + 0.1 * len(slots) * len(correlations)), 7.5),
                 layout="constrained")
    axes = fig.subplots(len(tasks), 1, sharex=True, squeeze=False)[:, 0]
    for ax, task in zip(axes, tasks):
        here = bars[bars["task"] == task].set_index(["model", "correlation"])
        for k, (model, paper) in enumerate(slots):
            style = model_style(model)
            rows = here.loc[model].reindex(correlations) if model in here.index.get_level_values(0) else None
            if rows is None:
                continue
            offset = (k - (len(slots) - 1) / 2) * width
            x = np.arange(len(correlations)) + offset
            if paper:
                shown = rows["paper"].notna().to_numpy()
                ax.bar(x[shown], rows["paper"].to_numpy()[shown], width, facecolor="white", edgecolor=style.color,
                       hatch=PAPER_HATCH, linewidth=1.2, label=f"{style.label}, {paper_label}")
            else:
                ax.bar(x, rows["gain"], width, color=style.color, edgecolor="black", linewidth=0.5,
                       hatch=style.hatch or None, label=style.label,
                       yerr=[rows["gain"] - rows["low"], rows["high"] - rows["gain"]],
                       error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "black"})
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(task)
        ax.set_ylabel(y_label)
        ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
    axes[-1].set_xticks(np.arange(len(correlations)), [f"{p:g}" for p in correlations])
    axes[-1].set_xlabel("task correlation p = cos(w1, w2)")
    handles = [Patch(facecolor=model_style(m).color, edgecolor="black", hatch=model_style(m).hatch or None,
                     label=model_style(m).label) for m in models]
    if with_paper:
        handles.append(Patch(facecolor="white", edgecolor="dimgray", hatch=PAPER_HATCH, label=paper_label))
    axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
                   title="bars (ours: 95% CI)", title_fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def loss_vs_correlation(lines: pd.DataFrame, y_label: str, interval_label: str) -> Figure:
    """MMoE Figs. 3-4 style: test loss against task correlation, one line per model with its interval
    as error bars (models dodged a little along x so that the bars stay apart). ``lines``: one row per (correlation, model) with ``value, low, high``."""
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    models = ordered_models(lines["model"])
    correlations = sorted(lines["correlation"].unique())
    dodge = 0.012 * (max(correlations) - min(correlations) or 1.0)  # keeps the error bars apart
    for k, model in enumerate(models):
        rows = lines[lines["model"] == model].sort_values("correlation")
        style = model_style(model)
        ax.errorbar(rows["correlation"] + (k - (len(models) - 1) / 2) * dodge, rows["value"],
                    yerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]], color=style.color,
                    marker=style.marker, linestyle=style.linestyle, label=style.label, linewidth=1.6, capsize=3,
                    elinewidth=1)
    ax.set_xticks(correlations, [f"{p:g}" for p in correlations])
    ax.set_xlabel("task correlation p = cos(w1, w2)")
    ax.set_ylabel(y_label)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.legend(fontsize=9, title=interval_label, title_fontsize=8, loc="best")
    return fig


def training_curves(seeds: pd.DataFrame, means: pd.DataFrame, y_label: str, mean_label: str,
                    seed_label: str) -> Figure:
    """MMoE Fig. 4 style: training loss against epoch, one panel per task correlation, one colour per
    model; each seed as a thin line ending in a dot (its last epoch), the median over seeds bold.

    ``seeds``: one row per (correlation, model, seed, epoch) with ``train_loss``. ``means``: one row
    per (correlation, model, epoch) with ``median``, for the epochs at which it is to be drawn.
    The y axis is logarithmic: the loss falls by two orders of magnitude.
    """
    correlations = sorted(seeds["correlation"].unique())
    models = ordered_models(seeds["model"])
    fig = Figure(figsize=(4.6 * len(correlations) + 0.4, 4.8), layout="constrained")
    axes = fig.subplots(1, len(correlations), sharey=True, squeeze=False)[0]
    for ax, correlation in zip(axes, correlations):
        for model in models:
            style = model_style(model)
            here = seeds[(seeds["correlation"] == correlation) & (seeds["model"] == model)]
            for _, run in here.groupby("seed"):
                run = run.sort_values("epoch")
                ax.plot(run["epoch"], run["train_loss"], color=style.color, linewidth=0.6, alpha=0.35)
                ax.plot(run["epoch"].iloc[-1:], run["train_loss"].iloc[-1:], linestyle="none", marker="o",
                        markersize=2.5, color=style.color, alpha=0.7)
            mean = means[(means["correlation"] == correlation) & (means["model"] == model)].sort_values("epoch")
            ax.plot(mean["epoch"], mean["median"], color=style.color, linestyle=style.linestyle, linewidth=2.0,
                    label=style.label)
        ax.set_yscale("log")
        ax.set_title(f"task correlation p = {correlation:g}")
        ax.set_xlabel("epoch")
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
        ax.grid(True, which="minor", axis="y", linewidth=0.3, alpha=0.3)
    axes[0].set_ylabel(y_label)
    handles = [Line2D([], [], color=model_style(m).color, linestyle=model_style(m).linestyle, linewidth=2.0,
                      label=model_style(m).label) for m in models]
    handles += [Line2D([], [], color="0.4", linewidth=2.0, label=mean_label),
                Line2D([], [], color="0.4", linewidth=0.6, alpha=0.6, marker="o", markersize=2.5, markevery=[-1],
                       label=seed_label)]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles) if len(handles) <= 6 else 4, fontsize=9)
    return fig


def expert_utilization(usage: pd.DataFrame, y_label: str) -> Figure:
    """PLE Fig. 8: for every gated model (a row of panels) and each of its gates (a panel), one bar per
    expert at its mean gate weight with a std error bar, coloured by the expert's kind.

    ``usage``: one row per (model, level, gate, expert) with ``expert_kind, mean, std``.
    """
    models = ordered_models(usage["model"])
    gates = {m: list(usage[usage["model"] == m][["level", "gate"]].drop_duplicates().itertuples(index=False, name=None))
             for m in models}
    n_cols = max(len(g) for g in gates.values())
    kinds = sorted(usage["expert_kind"].unique())
    kind_color = dict(zip(kinds, KIND_COLORS))
    fig = Figure(figsize=(3.2 * n_cols + 1.5, 2.6 * len(models) + 0.6), layout="constrained")
    axes = fig.subplots(len(models), n_cols, squeeze=False, sharey=True)
    for row, model in zip(axes, models):
        for ax, (level, gate) in zip(row, gates[model]):
            part = usage[(usage["model"] == model) & (usage["level"] == level) & (usage["gate"] == gate)]
            ax.bar(np.arange(len(part)), part["mean"], color=[kind_color[k] for k in part["expert_kind"]],
                   yerr=part["std"], error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "black"},
                   edgecolor="black", linewidth=0.5)
            ax.set_xticks(np.arange(len(part)), part["expert"], rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{model_style(model).label}: level {level}, {gate} gate", fontsize=10)
            ax.set_ylim(0, 1)
            ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
        for ax in row[len(gates[model]):]:
            ax.set_axis_off()
        row[0].set_ylabel(y_label)
    fig.legend(handles=[Patch(facecolor=kind_color[k], edgecolor="black", label=f"{k} expert") for k in kinds],
               loc="outside upper center", ncols=len(kinds), fontsize=9)
    return fig
