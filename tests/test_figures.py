"""Figures, tables and REPORT.md (issue 7): drawings show exactly the numbers given; the best run is
chosen on validation; LaTeX is escaped; bad inputs are clear errors; the report's numbers and
verdicts are those of the tables it read; every model has a style of its own. Inputs are written by
the real producers (aggregate, stats, experts, sweep) from hand-made run records whose answers are
known."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.image import imread
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from models import list_models
from replication import figures, report
from replication.report import drawings
from replication.aggregate import aggregate, write_stats
from replication.cli import main
from replication.config import ConfigError
from replication.experts import write_experts
from replication.io import write_json
from replication.claims import load_registry
from replication.sweep import write_sweep
from replication.verdicts import NOT_JUDGED, Settings
from tests.conftest import REPO

TASKS = [{"name": "income", "type": "binary"}, {"name": "marital", "type": "binary"}]
SEEDS = range(4)
# Test AUC offsets from Single-Task per model and task (plus a small seed-dependent wobble): PLE is
# clearly better on income and clearly worse on marital; MMoE's marital gain is within noise.
OFFSETS = {"single_task": (0.0, 0.0), "shared_bottom": (-0.002, -0.001), "mmoe": (-0.001, 0.0), "ple": (0.004, -0.003)}
WOBBLE = (0.0001, -0.0002, 0.00015, -0.00005)
SCALE = {"single_task": 0.0, "shared_bottom": 1.0, "mmoe": 2.0, "ple": 1.0}  # wobble per model: pairs vary
ENVIRONMENT = {"device": "cpu (test)", "git_commit": "abc123", "versions": {"python": "3.11", "torch": "2.x"}}


def census_record(model, seed, income, marital, validation=None, task_group="income-marital", tasks=TASKS):
    names = [t["name"] for t in tasks]
    gates = {} if model in ("single_task", "shared_bottom") else {
        names[0]: {"experts": [f"{names[0]}/0", "shared/0"], "mean": [0.7 + 0.01 * seed, 0.3 - 0.01 * seed],
                   "std": [0.1, 0.05]},
        names[1]: {"experts": [f"{names[1]}/0", "shared/0"], "mean": [0.4, 0.6], "std": [0.2, 0.2]},
    }
    return {
        "format": 1, "status": "ok", "train": {"lr": 0.001, "max_epochs": 100},
        "model": model, "seed": seed, "tasks": tasks, "dataset": "census-income-kdd", "task_group": task_group,
        "split_seed": 0, "data_hash": "f00dfeed" * 8, "main_task": names[0],
        "test": {names[0]: {"auc": income}, names[1]: {"auc": marital}},
        "validation": validation or {names[0]: {"auc": income}, names[1]: {"auc": marital}},
        "best_epoch": {n: 3 for n in names}, "n_parameters": 100, "environment": ENVIRONMENT, "gates_test": gates,
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Run records, and the census table, statistics, experts table and sweep table made from them."""
    root = tmp_path_factory.mktemp("inputs")
    for model, (d_income, d_marital) in OFFSETS.items():
        for seed in SEEDS:
            scale = SCALE[model]
            record = census_record(model, seed, 0.94 + d_income + WOBBLE[seed] * scale,
                                   0.99 + d_marital + WOBBLE[-1 - seed] * scale)
            write_json(root / "runs" / model / f"seed_{seed}.json", record)
    aggregate(root / "runs", root / "census")
    write_stats(root / "runs", root / "stats", references=("single_task", "ple"))
    write_experts(root / "runs", root / "experts.csv")
    write_experts(root / "runs", root / "synthetic_experts.csv")  # any experts table: the figure draws what it is given
    for row in sweep_runs_table().drop_duplicates(["correlation", "model", "seed"]).itertuples(index=False):
        record = synthetic_record(row.correlation, row.model, row.seed, row.value)
        write_json(root / "synthetic" / f"p{row.correlation:g}" / row.model / f"seed_{row.seed}.json", record)
    write_sweep(root / "synthetic", root / "sweep")
    for correlation in (0.2, 0.5, 1.0):  # the data the synthetic records were trained on (their data hash)
        write_json(root / "synthetic_data" / f"p{correlation:g}" / "schema.json", synthetic_schema(correlation))
    group2 = [{"name": "education", "type": "binary"}, {"name": "marital", "type": "binary"}]
    for model in ("single_task", "mmoe"):
        for seed in SEEDS:
            write_json(root / "group2" / model / f"seed_{seed}.json",
                       census_record(model, seed, 0.88 + 0.001 * seed, 0.99, task_group="education-marital", tasks=group2))
    return root


# Training histories of the synthetic records: seeds 0, 1, 2 stop after 4, 3 and 5 epochs; the training
# loss is 4 / 2**epoch + 0.5 seed + a model's offset (short binary fractions: exact in the CSV).
EPOCHS = {0: 4, 1: 3, 2: 5}
LOSS_OFFSET = {"single_task": 0.0, "shared_bottom": 0.25, "mmoe": 0.75, "ple": 0.125}


def train_loss(model, seed, epoch):
    return 4.0 / 2 ** epoch + 0.5 * seed + LOSS_OFFSET[model]


def synthetic_record(correlation, model, seed, mse, epochs=None):
    """A synthetic run record as `train` writes it, with the training history above (test MSE ``mse``
    on both tasks; validation MSE half and a quarter of the epoch's training loss)."""
    tasks = [{"name": "task1", "type": "regression"}, {"name": "task2", "type": "regression"}]
    history = [{"epoch": e, "train_loss": train_loss(model, seed, e),
                "validation": {"task1": {"mse": train_loss(model, seed, e) / 2},
                               "task2": {"mse": train_loss(model, seed, e) / 4}}}
               for e in range(1, (epochs or EPOCHS[seed]) + 1)]
    return {
        "model": model, "seed": seed, "tasks": tasks, "dataset": "synthetic", "task_group": f"correlation={correlation:g}",
        "format": 1, "split_seed": 0, "data_hash": f"{correlation:g}".ljust(64, "a"), "main_task": "task1", "status": "ok",
        "test": {"task1": {"mse": mse}, "task2": {"mse": mse}}, "validation": history[-1]["validation"],
        "best_epoch": {"task1": len(history), "task2": len(history)}, "train": {"max_epochs": 300},
        "n_parameters": 100, "environment": ENVIRONMENT, "gates_test": {}, "history": history,
    }


# The size of the tests' synthetic data (unlike any real one, so that a typed-in size would show).
DATA_ROWS, DATA_DIM = 2_000, 7


def synthetic_schema(correlation, rows=DATA_ROWS, dim=DATA_DIM, data_hash=None):
    """The parts of `synth`'s schema.json the report reads: the data set, the generator's size and the
    data hash that the records of ``synthetic_record`` carry."""
    return {"dataset": "synthetic", "task_group": f"correlation={correlation:g}", "generator": {"rows": rows, "dim": dim},
            "data_hash": data_hash or f"{correlation:g}".ljust(64, "a")}


def sweep_runs_table(seeds=range(3)) -> pd.DataFrame:
    """Tidy synthetic runs whose Hard Sharing-MMoE gap grows as the correlation falls and where PLE
    has the largest gain (MSE: lower is better)."""
    mse = {"single_task": lambda p: 0.020, "shared_bottom": lambda p: 0.020 + 0.01 * (1 - p),
           "mmoe": lambda p: 0.019, "ple": lambda p: 0.018}
    rows = [{"correlation": p, "task_group": f"correlation={p:g}", "model": m, "seed": s, "task": task,
             "metric": "mse", "higher_is_better": False, "value": f(p) + 0.0001 * s + 0.00003 * (m == "ple") * s,
             "at_epoch_cap": False}
            for p in (0.2, 0.5, 1.0) for m, f in mse.items() for s in seeds for task in ("task1", "task2")]
    return pd.DataFrame(rows)


def cli_args(root, out, *, runs=True):
    args = ["figures", "--census", str(root / "census.csv"), "--census-stats", str(root / "stats"),
            "--experts", str(root / "experts.csv"), "--sweep", str(root / "sweep.csv"),
            "--synthetic-runs", str(root / "synthetic"), "--group2-runs", str(root / "group2"),
            "--synthetic-experts", str(root / "synthetic_experts.csv"), "--synthetic-data", str(root / "synthetic_data"),
            "--out", str(out)]
    return args + (["--runs", str(root / "runs")] if runs else [])


@pytest.fixture(scope="module")
def produced(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_figures")
    assert main(cli_args(inputs, out)) == 0
    return out


# ---------------------------------------------------------------------------------------------- drawing

def test_every_model_keeps_one_colour_and_the_main_five_differ():
    assert figures.model_style("ple") == figures.model_style("ple")
    main_five = [figures.model_style(m).color for m in ("single_task", "shared_bottom", "mmoe", "cgc", "ple")]
    assert len(set(main_five)) == 5
    assert all(c in figures.PALETTE for c in main_five)
    assert figures.model_style("a_new_model") == figures.model_style("a_new_model")
    assert figures.ordered_models(["ple", "single_task", "mmoe"]) == ["single_task", "mmoe", "ple"]


def test_every_registered_model_has_a_style_of_its_own():
    """The palette has ten colours and the zoo thirteen models: no two registered models may look the
    same, in point and line plots (colour, marker; colour, line style) or in bar plots (colour, hatch)."""
    models = list_models()
    assert len(models) == 13 and set(models) <= set(figures.MODEL_NAMES)
    styles = {m: figures.model_style(m) for m in models}
    for what in (lambda s: (s.color, s.marker), lambda s: (s.color, s.hatch), lambda s: (s.color, s.linestyle),
                 lambda s: s.marker, lambda s: s.label):
        assert len({what(s) for s in styles.values()}) == len(models)
    assert all(s.color in figures.PALETTE for s in styles.values())  # the colour-blind-safe palette only
    assert figures.PAPER_HATCH not in {s.hatch for s in styles.values()}  # the paper's bars stay apart
    # The default pipeline's five models differ in colour alone, unhatched and with solid lines.
    five = [styles[m] for m in ("single_task", "shared_bottom", "mmoe", "cgc", "ple")]
    assert len({s.color for s in five}) == 5 and {s.hatch for s in five} == {""} and {s.linestyle for s in five} == {"-"}


def test_bars_and_legend_carry_a_models_hatch():
    """A zoo model whose colour repeats one of the palette's (here Customized Sharing, Single-Task's
    colour) is hatched in Fig. 7, and so is its legend entry."""
    shared = [m for m in figures.MODEL_NAMES if figures.model_style(m).color == figures.model_style("single_task").color]
    assert shared == ["single_task", "customized_sharing"]
    bars = pd.DataFrame({"correlation": [0.5, 0.5], "model": ["single_task", "customized_sharing"], "task": "task1",
                         "gain": [0.001, 0.002], "paper": np.nan}).assign(low=0.0, high=0.003)
    fig = figures.correlation_gain_bars(bars, ["task1"], "MTL gain", "paper")
    containers = {c.get_label(): c for c in fig.axes[0].containers}
    assert containers["Single-Task"].patches[0].get_hatch() is None
    assert containers["Customized Sharing"].patches[0].get_hatch() == figures.model_style("customized_sharing").hatch != ""
    legend = {t.get_text(): h for t, h in zip(fig.axes[0].get_legend().get_texts(), fig.axes[0].get_legend().legend_handles)}
    assert legend["Customized Sharing"].get_hatch() == figures.model_style("customized_sharing").hatch
    assert to_rgb(legend["Customized Sharing"].get_facecolor()) == pytest.approx(figures.model_style("single_task").color)


def test_seesaw_draws_one_point_per_model_at_its_gains():
    points = pd.DataFrame({"model": ["mmoe", "ple", "cgc"], "x": [-0.001, 0.002, 0.0005], "y": [0.0003, 0.001, -0.002]})
    points = points.assign(x_low=points["x"] - 1e-4, x_high=points["x"] + 2e-4, y_low=points["y"] - 1e-4,
                           y_high=points["y"] + 1e-4)
    fig = figures.seesaw(points, "income gain", "marital gain", "better on both")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(dots) == 3
    np.testing.assert_allclose(np.vstack([d.get_offsets() for d in dots]), points[["x", "y"]].to_numpy())
    assert [t.get_text() for t in ax.texts if t.get_text() != "better on both"] == ["MMoE", "PLE", "CGC"]
    shaded = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_xy() == (0, 0)]
    assert len(shaded) == 1 and shaded[0].get_width() > 0 and shaded[0].get_height() > 0
    assert ax.get_xlabel() == "income gain" and ax.get_ylabel() == "marital gain"


def test_seesaw_labels_of_crowded_points_do_not_overlap():
    """Five models within a few pixels of one another (and one far off): every label is drawn, and no
    two labels overlap each other or a point."""
    models = ["shared_bottom", "mmoe", "cgc", "ple", "omoe", "sluice"]
    x = np.array([0.0010, 0.00101, 0.00102, 0.00100, 0.00099, -0.002])
    y = np.array([0.0005, 0.00051, 0.00049, 0.00050, 0.00052, -0.001])
    points = pd.DataFrame({"model": models, "x": x, "y": y, "x_low": x - 1e-5, "x_high": x + 1e-5,
                           "y_low": y - 1e-5, "y_high": y + 1e-5})
    fig = figures.seesaw(points, "x", "y", "better on both")
    ax = fig.axes[0]
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text() != "better on both"]
    assert [t.get_text() for t in labels] == [figures.model_style(m).label for m in models]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    dots = ax.transData.transform(np.c_[x, y])
    assert not [(box, dot) for box in boxes for dot in dots if box.contains(*dot)]


def test_forest_draws_each_models_gain_and_interval_on_its_row_in_every_task_panel():
    """One panel per task, one row per model in display order (first on top), each point at the model's
    gain with its interval as the error bar, and a vertical line at 0."""
    models = ["ple", "single_task", "mmoe"]  # given out of display order
    gains = pd.DataFrame({"model": models * 2, "task": ["income"] * 3 + ["marital"] * 3,
                          "gain": [0.003, -0.001, 0.0005, -0.002, 0.001, 0.0002]})
    gains = gains.assign(low=gains["gain"] - 2e-4, high=gains["gain"] + 1e-4)
    fig = figures.forest(gains, ["income", "marital"], ["gain (income)", "gain (marital)"])
    assert isinstance(fig, Figure) and [ax.get_title() for ax in fig.axes] == ["income", "marital"]
    rows = {"Single-Task": 2, "MMoE": 1, "PLE": 0}
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(rows)  # top (y = 2) first
    for ax, task in zip(fig.axes, ["income", "marital"]):
        expected = gains[gains["task"] == task].set_index("model")
        drawn = {c.get_label(): c for c in ax.containers}
        assert set(drawn) == set(rows)
        for model, row in expected.iterrows():
            container = drawn[figures.model_style(model).label]
            (x,), (y,) = container.lines[0].get_data()
            assert (x, y) == (pytest.approx(row["gain"]), rows[figures.model_style(model).label])
            segment = container.lines[2][0].get_segments()[0]  # the horizontal error bar
            np.testing.assert_allclose(segment[:, 0], [row["low"], row["high"]])
            assert to_rgb(container.lines[0].get_color()) == pytest.approx(figures.model_style(model).color)
        zero = [line for line in ax.lines if list(line.get_xdata()) == [0, 0]]
        assert len(zero) == 1
    assert fig.axes[1].get_xlabel() == "gain (marital)"


def census_of(models) -> pd.DataFrame:
    """A census table as `aggregate` writes it: Single-Task the reference, every other model a gain."""
    rows = [{"model": m, "task": task, "metric": "auc", "n_seeds": 3, "seeds": "0 1 2", "mean": 0.9, "std": 0.001,
             "mtl_gain": np.nan if m == "single_task" else 0.001 * k * sign,
             "pvalue_holm": 0.5, "significant": False}
            for k, m in enumerate(models) for task, sign in (("income", 1), ("marital", -1))]
    return pd.DataFrame(rows).assign(mtl_gain_low=lambda d: d["mtl_gain"] - 1e-4, mtl_gain_high=lambda d: d["mtl_gain"] + 1e-4)


def test_seesaw_is_a_scatter_up_to_six_models_and_a_forest_plot_beyond():
    registered = [m for m in figures.MODEL_NAMES if m != "single_task"]
    few = report.seesaw_figure(census_of(["single_task", *registered[:drawings.SEESAW_SCATTER_MAX]]))
    assert len(few.figure.axes) == 1 and "forest" not in few.caption  # PLE's scatter: one panel
    many = report.seesaw_figure(census_of(["single_task", *registered[:drawings.SEESAW_SCATTER_MAX + 1]]))
    assert [ax.get_title() for ax in many.figure.axes] == ["income", "marital"]
    assert len(many.figure.axes[0].get_yticklabels()) == drawings.SEESAW_SCATTER_MAX + 1
    assert many.stem == few.stem == "fig3_seesaw" and "forest plot, for its 7 models" in many.caption


def test_fig7_says_that_our_data_and_the_papers_differ_in_size(inputs, produced):
    """Our size is read from the data's schema (2,000 rows, d = 7 here), the paper's is PLE's constant;
    both are in the figure (title and legend) and in its caption, and without --synthetic-data the
    figure says that our size is not known rather than print one."""
    size = report.load_synthetic_size(inputs / "synthetic_data")
    assert (size.rows, size.dim) == (DATA_ROWS, DATA_DIM)
    sweep = pd.read_csv(inputs / "sweep.csv")
    drawing = report.fig7_figure(sweep, size)
    assert "2,000 rows, d = 7" in drawing.figure.get_suptitle() and "1,400,000 rows, d = 512" in drawing.figure.get_suptitle()
    legend = [t.get_text() for t in drawing.figure.axes[0].get_legend().get_texts()]
    assert "paper (read off Fig. 7; 1,400,000 rows, d = 512)" in legend
    text = (produced / "REPORT.md").read_text()
    assert "synthetic data of 2,000 rows, d = 7 (each data set's schema)" in text
    assert "measured on data of 1,400,000 rows, d = 512 (PLE Sec. 5.2.1)" in text
    assert "): 2,000 rows, d = 7 in every data set (their schema.json" in text
    unknown = report.fig7_figure(sweep)
    assert "not given" in unknown.figure.get_suptitle() and "not given" in unknown.caption


def test_synthetic_data_of_other_runs_or_of_mixed_sizes_is_refused(inputs, tmp_path):
    write_json(tmp_path / "other" / "p0.5" / "schema.json", synthetic_schema(0.5, data_hash="b" * 64))
    with pytest.raises(ConfigError, match=r"does not hold the data of the synthetic run .* \(data hash 0\.2aaaaaaaaa\)"):
        report.load_inputs(synthetic_runs=inputs / "synthetic", synthetic_data=tmp_path / "other")
    write_json(tmp_path / "mixed" / "p0.2" / "schema.json", synthetic_schema(0.2))
    write_json(tmp_path / "mixed" / "p0.5" / "seed_1" / "schema.json", synthetic_schema(0.5, rows=4_000))
    with pytest.raises(ConfigError, match="data sets of different sizes: .* has 2,000 rows, d = 7, .* has 4,000 rows"):
        report.load_synthetic_size(tmp_path / "mixed")
    with pytest.raises(ConfigError, match="no schema.json under"):
        report.load_synthetic_size(tmp_path / "nowhere")


def test_fig7_bar_heights_are_the_gains_and_the_paper_bars_sit_beside_them():
    bars = pd.DataFrame({
        "correlation": [0.2, 0.2, 1.0, 1.0], "model": ["mmoe", "cgc", "mmoe", "cgc"], "task": ["task1"] * 4,
        "gain": [0.004, -0.001, 0.002, 0.003], "paper": [0.0045, np.nan, np.nan, np.nan]})
    bars = bars.assign(low=bars["gain"] - 0.001, high=bars["gain"] + 0.001)
    fig = figures.correlation_gain_bars(bars, ["task1"], "MTL gain", "paper (read off Fig. 7)")
    containers = {c.get_label(): c for c in fig.axes[0].containers}
    assert [p.get_height() for p in containers["MMoE"]] == pytest.approx([0.004, 0.002])
    assert [p.get_height() for p in containers["CGC"]] == pytest.approx([-0.001, 0.003])
    paper = containers["MMoE, paper (read off Fig. 7)"]
    assert [p.get_height() for p in paper] == pytest.approx([0.0045])  # only where the paper has a bar
    assert paper.patches[0].get_hatch() == figures.PAPER_HATCH
    assert paper.patches[0].get_x() > containers["MMoE"].patches[0].get_x()  # beside ours, not on it
    assert "CGC, paper (read off Fig. 7)" not in containers  # no paper values: no slot
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["MMoE", "CGC", "paper (read off Fig. 7)"]


def test_loss_figure_has_one_line_per_model_through_the_given_values():
    lines = pd.DataFrame({"correlation": [0.5, 1.0, 0.5, 1.0], "model": ["ple", "ple", "shared_bottom", "shared_bottom"],
                          "value": [0.02, 0.018, 0.03, 0.019]})
    lines = lines.assign(low=lines["value"] - 0.001, high=lines["value"] + 0.001)
    ax = figures.loss_vs_correlation(lines, "test MSE", "bars: 95% CI").axes[0]
    drawn = {c.get_label(): np.asarray(c.lines[0].get_ydata(), dtype=float) for c in ax.containers}  # (data line, caps, bars)
    assert set(drawn) == {"PLE", "Hard Sharing"}
    np.testing.assert_allclose(drawn["PLE"], [0.02, 0.018])
    np.testing.assert_allclose(drawn["Hard Sharing"], [0.03, 0.019])


def synthetic_records(correlations=(0.2, 0.5, 1.0), models=tuple(LOSS_OFFSET), seeds=range(3)) -> list[dict]:
    """Synthetic run records as `load_synthetic_records` returns them (each with its correlation)."""
    return [{**synthetic_record(p, m, s, 0.02), "correlation": p} for p in correlations for m in models for s in seeds]


def test_training_curves_draw_every_seed_and_the_median_until_the_first_seed_stops():
    """MMoE Fig. 4: one panel per MMoE correlation that was run (0.2 is not one of them), the models
    MMoE compares plus PLE (not Single-Task); per model a thin line per seed and, bold, the median over
    all seeds for the epochs every seed reached (1-3: seed 1 stops after 3)."""
    drawing = report.curves_figure(synthetic_records())
    assert drawing.stem == "mmoe_fig4_training_curves"
    axes = drawing.figure.axes
    assert [ax.get_title() for ax in axes] == ["task correlation p = 0.5", "task correlation p = 1"]
    for ax in axes:
        assert ax.get_yscale() == "log"
        means = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
        assert list(means) == ["Hard Sharing", "MMoE", "PLE"]
        for model, line in zip(("shared_bottom", "mmoe", "ple"), means.values()):
            np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
            np.testing.assert_allclose(line.get_ydata(), [4 / 2 ** e + 0.5 + LOSS_OFFSET[model] for e in (1, 2, 3)])
            assert line.get_color() == figures.model_style(model).color
        seeds = [line for line in ax.lines if line.get_label().startswith("_") and line.get_linestyle() == "-"]
        assert len(seeds) == 3 * 3  # models x seeds
        assert sorted(len(line.get_xdata()) for line in seeds) == [3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert set(drawing.data["model"]) == {"shared_bottom", "mmoe", "ple"}
    assert set(drawing.data["correlation"]) == {0.5, 1.0}


def test_expert_figure_has_one_bar_per_expert_coloured_by_kind():
    usage = pd.DataFrame({
        "model": ["cgc"] * 3 + ["mmoe"] * 2, "level": 1, "gate": ["income", "income", "income", "marital", "marital"],
        "expert": ["income/0", "shared/0", "shared/1", "shared/0", "shared/1"],
        "expert_kind": ["task-specific", "shared", "shared", "shared", "shared"],
        "mean": [0.86, 0.1, 0.04, 0.5, 0.5], "std": [0.1, 0.05, 0.02, 0.2, 0.2]})
    fig = figures.expert_utilization(usage, "gate weight")
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == 2  # mmoe row: one gate; cgc row: one gate
    bars = {ax.get_title(): ax.patches for ax in drawn}
    cgc = bars["CGC: level 1, income gate"]
    assert [p.get_height() for p in cgc] == pytest.approx([0.86, 0.1, 0.04])
    assert cgc[1].get_facecolor() == cgc[2].get_facecolor() != cgc[0].get_facecolor()


def test_saved_figures_are_png_at_200_dpi_and_pdf(tmp_path):
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1])
    paths = report.save_figure(fig, tmp_path, "f")
    assert [p.name for p in paths] == ["f.png", "f.pdf"]
    assert imread(tmp_path / "f.png").shape[:2] == (report.DPI, 2 * report.DPI) and report.DPI >= 150
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


# ---------------------------------------------------------------------------------------------- tables

def test_best_run_is_chosen_on_validation_not_test():
    """Seed 1 has the best validation income AUC, seed 2 the best test income AUC: MMoE's best run is seed 1,
    and its marital value is seed 1's."""
    validation = {0: 0.90, 1: 0.95, 2: 0.91}
    test = {0: (0.93, 0.990), 1: (0.92, 0.991), 2: (0.97, 0.999)}
    records = [census_record("mmoe", s, *test[s], validation={"income": {"auc": validation[s]}, "marital": {"auc": 0.5}})
               for s in validation]
    records += [census_record("single_task", s, 0.94, 0.99) for s in range(3)]
    best = report.best_runs(records).set_index(["model", "task"])
    assert best.loc[("mmoe", "income"), "best_seed"] == 1
    assert best.loc[("mmoe", "income"), "best"] == pytest.approx(0.92)
    assert best.loc[("mmoe", "marital"), "best"] == pytest.approx(0.991)
    assert best.loc[("mmoe", "income"), "mean"] == pytest.approx(np.mean([0.93, 0.92, 0.97]))
    table = report.best_run_table(records)
    assert table.stem == "mmoe_table1_census"
    row = table.values.set_index("model").loc["mmoe"]
    assert row["income_best"] == pytest.approx(0.92) and row["income_paper_mmoe_table1_best"] == pytest.approx(0.9410)
    assert row["best_validation_income"] == pytest.approx(0.95)
    assert table.display.set_index("model").loc["MMoE", "income, best run"] == "0.92000"


def test_best_run_table_follows_the_records_task_group():
    tasks = [{"name": "education", "type": "binary"}, {"name": "marital", "type": "binary"}]
    records = [census_record(m, s, 0.88 + 0.001 * s, 0.99, task_group="education-marital", tasks=tasks)
               for m in ("mmoe", "omoe") for s in range(2)]
    table = report.best_run_table(records)
    assert table.stem == "mmoe_table2_census"
    row = table.values.set_index("model").loc["omoe"]
    assert row["best_seed"] == 1 and row["education_paper_mmoe_table2_mean"] == pytest.approx(0.8813)
    assert "education, best run" in table.display.columns


def test_latex_escapes_underscores_and_specials():
    assert report.latex_escape("single_task 5% a&b ±") == r"single\_task 5\% a\&b $\pm$"
    table = report.Table("t", "cap_tion", pd.DataFrame(), pd.DataFrame({"model_name": ["shared_bottom"], "x": ["1 ± 2"]}),
                         ["note_1"])
    tex = report.latex_table(table)
    assert r"shared\_bottom & 1 $\pm$ 2 \\" in tex and r"model\_name & x \\" in tex
    assert r"\caption{cap\_tion}" in tex and r"note\_1" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex
    body = [line for line in tex.splitlines() if not line.startswith((r"\label", "%"))]
    assert not [line for line in body if re.search(r"(?<!\\)_", line)]


def test_table5_shows_ours_and_the_papers_values_and_flags_the_inconsistent_cell(inputs, produced):
    census = pd.read_csv(inputs / "census.csv").set_index(["model", "task"])
    written = pd.read_csv(produced / "table5_census.csv").set_index("model")
    assert written.loc["ple", "income_mtl_gain"] == pytest.approx(census.loc[("ple", "income"), "mtl_gain"], rel=1e-5)
    assert written.loc["mmoe", "income_paper_ple_table5_mtl_gain"] == pytest.approx(0.0048)
    md = (produced / "table5_census.md").read_text()
    assert "+0.0048 (!)" in md and "(!) ple_table5: printed gain +0.0048 is inconsistent" in md
    ple = census.loc[("ple", "income")]
    assert f"| PLE | {ple['mean']:.5f} ± {ple['std']:.5f} | {ple['mtl_gain']:+.5f} [" in md
    assert "]* | 0.9522 | +0.0078 |" in md  # significant, then the paper's AUC and gain
    tex = (produced / "table5_census.tex").read_text()
    assert r"ple\_table5" in tex and "ple_table5" not in tex.replace(r"\_", "")


def test_what_is_drawn_is_read_from_the_tables(inputs):
    """The numbers handed to the drawings: per-seed means of the experts table averaged over seeds;
    sweep gains with the paper's bars; the loss averaged over tasks with the tasks' intervals averaged."""
    usage = report.expert_usage(pd.read_csv(inputs / "experts.csv")).set_index(["model", "gate", "expert"])
    assert usage.loc[("ple", "income", "income/0"), "mean"] == pytest.approx(np.mean([0.7 + 0.01 * s for s in SEEDS]))
    assert usage.loc[("ple", "income", "income/0"), "std"] == pytest.approx(0.1)
    assert set(usage.index.get_level_values("model")) == {"mmoe", "ple"}  # ungated models have no gates
    sweep = pd.read_csv(inputs / "sweep.csv")
    bars = report.fig7_bars(sweep).set_index(["correlation", "model", "task"])
    assert "single_task" not in bars.index.get_level_values("model")  # the reference has no gain
    assert bars.loc[(0.2, "ple", "task1"), "paper"] == pytest.approx(0.0069)
    assert bars.loc[(0.5, "mmoe", "task2"), "paper"] == pytest.approx(-0.0010)
    row = sweep[(sweep["correlation"] == 0.5) & (sweep["model"] == "mmoe")]
    lines = report.loss_by_correlation(sweep).set_index(["correlation", "model"])
    assert lines.loc[(0.5, "mmoe"), "value"] == pytest.approx(row["mean"].mean())
    assert lines.loc[(0.5, "mmoe"), "low"] == pytest.approx(row["t_low"].mean())
    assert lines.loc[(0.5, "mmoe"), "high"] == pytest.approx(row["t_high"].mean())
    uneven = sweep.copy()
    uneven.loc[uneven.index[0], "n_seeds"] = 2
    with pytest.raises(ConfigError, match="different seed counts across tasks"):
        report.loss_by_correlation(uneven)


def test_training_curves_table_has_every_epoch_of_every_finished_run():
    records = synthetic_records(correlations=(0.5,), models=("mmoe",))
    failed = {**synthetic_record(0.5, "mmoe", 3, 0.02, epochs=2), "status": "failed", "correlation": 0.5}
    curves = report.training_curves([*records, failed])
    assert list(curves.columns) == ["correlation", "model", "seed", "epoch", "train_loss", "validation_task1_mse",
                                    "validation_task2_mse"]
    assert len(curves) == sum(EPOCHS.values()) and 3 not in set(curves["seed"])  # the failed run is left out
    row = curves[(curves["seed"] == 2) & (curves["epoch"] == 5)].iloc[0]
    assert row["train_loss"] == train_loss("mmoe", 2, 5) == 1.875
    assert row["validation_task1_mse"] == 1.875 / 2 and row["validation_task2_mse"] == 1.875 / 4
    with pytest.raises(ConfigError, match="has no training history"):
        report.training_curves([{**records[0], "history": []}])


def test_mean_training_loss_is_over_the_seeds_still_training():
    """Seed 1 stops after epoch 3, seed 0 after 4, seed 2 after 5: at epoch 4 the mean is that of seeds 0
    and 2, at epoch 5 seed 2's alone; by default only the epochs all three seeds reached are kept."""
    curves = report.training_curves(synthetic_records(correlations=(0.5,), models=("mmoe",)))
    every = report.mean_curves(curves, min_share=0).set_index("epoch")
    assert list(every.index) == [1, 2, 3, 4, 5]
    assert list(every["n_seeds"]) == [3, 3, 3, 2, 1] and set(every["n_total"]) == {3}
    assert every.loc[4, "mean"] == pytest.approx(np.mean([train_loss("mmoe", 0, 4), train_loss("mmoe", 2, 4)]))
    assert every.loc[4, "mean"] == pytest.approx(1.5)  # seed 0: 0.25 + 0.75 = 1.0; seed 2: 0.25 + 1.0 + 0.75 = 2.0
    assert every.loc[4, "std"] == pytest.approx(np.std([1.0, 2.0], ddof=1))
    assert every.loc[5, "mean"] == train_loss("mmoe", 2, 5) and np.isnan(every.loc[5, "std"])
    assert every.loc[3, "mean"] == pytest.approx(np.mean([train_loss("mmoe", s, 3) for s in range(3)]))
    assert every.loc[3, "median"] == np.median([train_loss("mmoe", s, 3) for s in range(3)])
    assert every.loc[4, "median"] == pytest.approx(1.5)  # two seeds: the median is their mean
    assert list(report.mean_curves(curves)["epoch"]) == [1, 2, 3]
    assert list(report.mean_curves(curves, min_share=0.5)["epoch"]) == [1, 2, 3, 4]  # 2 of 3 seeds >= half


# ---------------------------------------------------------------------------------------------- inputs

def test_missing_inputs_are_skipped_with_a_logged_line(inputs, tmp_path, capsys):
    assert main(["figures", "--experts", str(inputs / "experts.csv"), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "skipping PLE Fig. 7 (MTL gain by correlation): --sweep not given" in err
    assert "skipping PLE Table 5 (census): --census not given" in err
    assert "skipping MMoE Fig. 4 (training curves): --synthetic-runs not given" in err
    assert ("skipping MMoE Table 2 (best run, education-marital): --group2-runs not given (`make reproduce-zoo` "
            "trains that task group and writes the table into paper_figures/zoo/)") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "HEADLINE.md", "REPORT.md", "claims.csv", "fig8_expert_utilization.pdf", "fig8_expert_utilization.png"]
    assert "|" not in (tmp_path / "HEADLINE.md").read_text()  # no census table, no judged claim: markers only
    text = (tmp_path / "REPORT.md").read_text()
    assert "- PLE Fig. 3 (seesaw): --census not given" in text
    # No run records: every claim is listed, none judged, each saying which runs its family lacks.
    assert text.count("**not judged here**") == len(load_registry().claims)


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.drop(columns=["mtl_gain_low"]), "lacks the column(s) mtl_gain_low"),
    (lambda t: t.assign(mean="high"), "column 'mean' holds non-numbers"),
    (lambda t: t.assign(significant="maybe"), "column 'significant' must be True or False"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "more than one row for"),
    (lambda t: t.iloc[:0], "has no rows"),
])
def test_a_malformed_input_is_a_clear_error(inputs, tmp_path, damage, message):
    bad = tmp_path / "census.csv"
    damage(pd.read_csv(inputs / "census.csv")).to_csv(bad, index=False)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        report.load_inputs(census=bad)
    assert str(bad) in str(error.value) and "python -m replication aggregate" in str(error.value)


def test_a_given_input_that_does_not_exist_or_is_not_csv_is_an_error(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["figures", "--sweep", str(tmp_path / "nope.csv"), "--out", str(out)]) == 2
    assert f"{tmp_path / 'nope.csv'} does not exist; write it with `python -m replication sweep`" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a readable CSV table"):
        report.load_inputs(experts=tmp_path / "binary.csv")
    with pytest.raises(ConfigError, match="give at least one of --census"):
        report.load_inputs()


def test_inputs_from_different_runs_are_refused(inputs, tmp_path):
    census = pd.read_csv(inputs / "census.csv")
    census.loc[(census["model"] == "ple") & (census["task"] == "income"), "mean"] += 0.01
    census.to_csv(tmp_path / "census.csv", index=False)
    with pytest.raises(ConfigError, match="the inputs disagree: ple income: mean test metric of --runs"):
        report.load_inputs(census=tmp_path / "census.csv", runs=[inputs / "runs"])
    census = pd.read_csv(inputs / "census.csv")
    census.loc[census["model"] == "mmoe", "mtl_gain"] *= 2
    census.to_csv(tmp_path / "census.csv", index=False)
    with pytest.raises(ConfigError, match="gain in --census-stats"):
        report.load_inputs(census=tmp_path / "census.csv", census_stats=inputs / "stats")


def test_synthetic_runs_that_are_not_the_sweeps_are_refused(inputs, tmp_path):
    """The synthetic records must agree with the sweep table; a record of another test MSE is refused."""
    record = synthetic_record(0.5, "ple", 1, 0.5)
    for row in sweep_runs_table().drop_duplicates(["correlation", "model", "seed"]).itertuples(index=False):
        good = synthetic_record(row.correlation, row.model, row.seed, row.value)
        bad = (row.correlation, row.model, row.seed) == (0.5, "ple", 1)
        write_json(tmp_path / f"p{row.correlation:g}" / row.model / f"seed_{row.seed}.json", record if bad else good)
    with pytest.raises(ConfigError, match=r"the inputs disagree: p = 0.5 ple task1: mean test metric of "
                                          r"--synthetic-runs .* but mean in --sweep"):
        report.load_inputs(sweep=inputs / "sweep.csv", synthetic_runs=tmp_path)
    assert report.load_inputs(synthetic_runs=tmp_path).synthetic_records  # alone, nothing to disagree with


def test_synthetic_runs_need_an_mmoe_correlation_and_a_history(tmp_path):
    for seed in range(2):
        write_json(tmp_path / "only" / "p0.2" / "mmoe" / f"seed_{seed}.json", synthetic_record(0.2, "mmoe", seed, 0.02))
    with pytest.raises(ConfigError, match=r"no runs of .* at the MMoE paper's correlations \(0.5, 0.9, 1\); it has "
                                          r"correlations 0.2"):
        report.write_report(tmp_path / "out", synthetic_runs=tmp_path / "only")
    assert main(["figures", "--synthetic-runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    write_json(tmp_path / "census" / "p0.5" / "mmoe" / "seed_0.json", census_record("mmoe", 0, 0.9, 0.9))
    with pytest.raises(ConfigError, match="holds census-income-kdd runs; --synthetic-runs reads synthetic ones only"):
        report.load_inputs(synthetic_runs=tmp_path / "census")


# ---------------------------------------------------------------------------------------------- claims

def test_report_claims_are_the_registry_judged_on_its_records(inputs, produced):
    """Every registry claim appears once, with the verdict the claims engine gives on the report's own
    records; claims.csv holds the same; a family missing runs (no CGC here) is not judged."""
    loaded = report.load_inputs(runs=[inputs / "runs"], synthetic_runs=inputs / "synthetic", group2_runs=[inputs / "group2"])
    results, _ = report.judged(loaded, Settings())
    text = (produced / "REPORT.md").read_text()
    table = pd.read_csv(produced / "claims.csv").set_index("claim")
    assert list(table.index) == [c.id for c in load_registry().claims]
    for result in results:
        rows = re.findall(rf"\| {re.escape(result.claim.statement)} \| .*? \| \*\*(.+?)\*\* \|", text)
        assert rows == [result.verdict]
        assert table.loc[result.claim.id, "verdict"] == result.verdict
    assert table.loc["ple_beats_single_task_income", "verdict"] == NOT_JUDGED  # no CGC runs: ple_table5 waits
    assert "no runs for cgc_beats_mmoe_income" in table.loc["ple_beats_single_task_income", "reading"]
    assert "Rule (computed, never written by hand" in text and "### Flagged runs" in text


# ---------------------------------------------------------------------------------------------- report

def test_every_artifact_is_written(produced):
    stems = ["table5_census", "mmoe_table1_census", "mmoe_table2_census", "fig3_seesaw", "fig7_correlation_gain",
             "mmoe_fig3_loss_vs_correlation", "mmoe_fig4_training_curves", "fig8_expert_utilization",
             "fig8_expert_utilization_synthetic"]
    names = {p.name for p in produced.iterdir()}
    for stem in stems[:3]:
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= names
    for stem in stems[3:]:
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert "mmoe_fig4_training_curves.csv" in names and "fig3_seesaw.csv" not in names  # only its data is a table
    text = (produced / "REPORT.md").read_text()
    for stem in stems:
        assert (f"[{stem}.tex]({stem}.tex)" if stem.endswith("census") else f"![{stem}]({stem}.png)") in text
    assert "[mmoe_fig4_training_curves.csv](mmoe_fig4_training_curves.csv) (the numbers drawn)" in text
    assert "## MMoE Fig. 4 (training curves)" in text
    assert "drawn up to the epoch at which its first seed stops" in text
    assert "- Synthetic run records (" in text and "36 runs, correlations 0.2, 0.5, 1; models single_task, " in text
    assert "## Not produced" not in text
    assert "## MMoE Table 2 (best run, education-marital)" in text
    assert "PLE Fig. 8: expert utilization on synthetic test data (one task correlation" in text
    assert "- Expert utilization on synthetic data (" in text
    assert "- Second task group's run records (" in text and f"{2 * len(SEEDS)} runs of census-income-kdd education-marital, {len(SEEDS)} seeds each" in text
    table2 = pd.read_csv(produced / "mmoe_table2_census.csv").set_index("model")
    assert table2.loc["mmoe", "education_paper_mmoe_table2_best"] == pytest.approx(0.8860)
    assert table2.loc["mmoe", "education_best"] == pytest.approx(0.88 + 0.001 * max(SEEDS))  # best validation = best test here


def test_group2_runs_must_be_the_education_marital_group(inputs, tmp_path, capsys):
    args = cli_args(inputs, tmp_path)
    args[args.index("--group2-runs") + 1] = str(inputs / "runs")
    assert main(args) == 2
    assert "--group2-runs holds income-marital runs; MMoE Table 2 is the education-marital task group" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_training_curves_csv_holds_every_drawn_epoch_exactly(inputs, produced):
    """The CSV round trip: the numbers read back are the records' histories (short binary fractions, so
    exactly), for the models and correlations drawn and no others."""
    written = pd.read_csv(produced / "mmoe_fig4_training_curves.csv")
    expected = pd.DataFrame([
        {"correlation": p, "model": m, "seed": s, "epoch": e, "train_loss": train_loss(m, s, e),
         "validation_task1_mse": train_loss(m, s, e) / 2, "validation_task2_mse": train_loss(m, s, e) / 4}
        for p in (0.5, 1.0) for m in ("shared_bottom", "mmoe", "ple") for s in range(3) for e in range(1, EPOCHS[s] + 1)])
    pd.testing.assert_frame_equal(written, expected, check_exact=True)
    records = report.load_synthetic_records(inputs / "synthetic")
    pd.testing.assert_frame_equal(written, report.curves_figure(records).data, check_exact=True)


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


INTERVAL = r"([+-]\d+\.\d+) \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\]"


def test_report_numbers_are_the_tables(inputs, produced):
    text = (produced / "REPORT.md").read_text()
    census = pd.read_csv(inputs / "census.csv").set_index(["model", "task"])
    # Table 5 as embedded: every model's mean ± std.
    for (model, task), row in census.iterrows():
        assert f"{row['mean']:.5f} ± {row['std']:.5f}" in text
    # Protocol and environment come from the records.
    assert "split seed 0, processed data f00dfeedf00d" in text
    assert "Runs trained on: cpu (test) (16 runs)" in text and "abc123 (16 runs)" in text
    assert f"{len(OFFSETS)} models, {len(SEEDS)} seeds each" in text


LINKED = ["fig7_correlation_gain", "mmoe_fig3_loss_vs_correlation", "mmoe_fig4_training_curves"]


def test_linked_figures_are_not_copied_and_the_report_points_to_them(inputs, produced, tmp_path):
    """The zoo's way: figures the same inputs draw as the default report are linked from its folder,
    not written again; REPORT.md's image and file links lead to the default folder's files."""
    out = produced / "zoo"
    assert main([*cli_args(inputs, out), "--link-from", str(produced), "--link", *LINKED]) == 0
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.split(".")[0] in LINKED]
    assert {"fig3_seesaw.png", "table5_census.csv", "REPORT.md"} <= names
    text = (out / "REPORT.md").read_text()
    for stem in LINKED:
        assert f"![{stem}](../{stem}.png)" in text and f"[{stem}.pdf](../{stem}.pdf)" in text
        assert (out / f"../{stem}.png").is_file()  # the link resolves
    assert "[mmoe_fig4_training_curves.csv](../mmoe_fig4_training_curves.csv) (the numbers drawn)" in text
    assert "![fig3_seesaw](fig3_seesaw.png)" in text
    # Everything but the links is what the unlinked report says.
    unlinked = re.sub(r" Linked, not copied: .*?\(checked byte for byte\)\.", "", text).replace("](../", "](")
    assert unlinked == (produced / "REPORT.md").read_text()


def test_a_link_to_another_figure_or_to_nothing_is_refused(inputs, produced, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("fig7_correlation_gain.png", "fig7_correlation_gain.pdf"):
        (other / name).write_bytes((produced / name).read_bytes())
    out = tmp_path / "out"
    assert main([*cli_args(inputs, out), "--link-from", str(other), "--link", "fig7_correlation_gain"]) == 0
    (other / "fig7_correlation_gain.png").write_bytes((produced / "fig3_seesaw.png").read_bytes())
    cases = {
        ("--link-from", str(other), "--link", "fig7_correlation_gain"): "holds another fig7_correlation_gain.png than",
        ("--link-from", str(other), "--link", "mmoe_fig4_training_curves"): "lacks mmoe_fig4_training_curves.png, "
                                                                          "mmoe_fig4_training_curves.pdf, mmoe_fig4_training_curves.csv",
        ("--link-from", str(other), "--link", "table5_census"): "--link table5_census: not a figure these inputs draw",
        ("--link", "fig7_correlation_gain"): "name that folder with --link-from",
    }
    for extra, message in cases.items():
        out = tmp_path / f"refused{len(message)}"
        assert main([*cli_args(inputs, out), *extra]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()  # refused before anything is written


def test_report_is_byte_identical_when_regenerated(inputs, produced, tmp_path):
    assert main(cli_args(inputs, tmp_path)) == 0
    for name in ("REPORT.md", "table5_census.tex", "fig3_seesaw.pdf", "fig3_seesaw.png", "mmoe_fig4_training_curves.png",
                 "mmoe_fig4_training_curves.pdf", "mmoe_fig4_training_curves.csv"):
        assert (tmp_path / name).read_bytes() == (produced / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------- dvc plots

def test_dvc_plots_read_columns_the_commands_write_in_the_figures_colours(inputs, produced):
    """dvc.yaml's top-level plots: each names a template in .dvc/plots whose colours are the figures'
    (model_style) for the models drawn, and x and y columns that the producing command writes, with
    the further columns its template reads."""
    plots = {name: spec for item in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] for name, spec in item.items()}
    assert set(plots) == {"mmoe_fig4_training_curves", "synthetic_sweep_test_mse"}
    sweep_models = figures.ordered_models(yaml.safe_load((REPO / "params.yaml").read_text())["synthetic"]["models"])
    expected = {  # the file dvc.yaml names, the same file as the tests' run of its command writes it, ...
        "mmoe_fig4_training_curves": ("paper_figures/mmoe_fig4_training_curves.csv",
                                      produced / "mmoe_fig4_training_curves.csv", {"correlation", "model", "seed"},
                                      [m for m in figures.ordered_models(report.CURVE_MODELS) if m in sweep_models]),
        "synthetic_sweep_test_mse": ("results/synthetic_sweep.csv", inputs / "sweep.csv",
                                     {"model", "task", "t_low", "t_high"}, sweep_models),
    }
    for name, spec in plots.items():
        path, table, fields, models = expected[name]
        (file, y), = spec["y"].items()
        assert file == path
        columns = set(pd.read_csv(table).columns)
        assert {spec["x"], y} | fields <= columns, name
        template = json.loads((REPO / ".dvc" / "plots" / f"{spec['template']}.json").read_text())
        colour = template["spec"]["encoding"]["color"]
        assert colour["field"] == "model" and colour["scale"]["domain"] == models
        assert colour["scale"]["range"] == [to_hex(figures.model_style(m).color) for m in models]


def test_the_zoo_links_the_default_reports_figures_and_depends_on_them():
    """pipelines/zoo/dvc.yaml's figures stage: every figure its command links from paper_figures/ is a
    dependency there (PNG and PDF, so that the default report is written first) and no output in
    paper_figures/zoo/ (no copy), and each is a figure the default figures stage writes."""
    zoo = yaml.safe_load((REPO / "pipelines" / "zoo" / "dvc.yaml").read_text())["stages"]["figures"]
    default = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["figures"]
    words = zoo["cmd"].split()
    assert words[words.index("--link-from") + 1] == "paper_figures"
    linked = words[words.index("--link") + 1:words.index("--out")]
    assert linked == LINKED
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in zoo["outs"]}
    default_outs = {next(iter(o)) if isinstance(o, dict) else o for o in default["outs"]}
    for stem in linked:
        for suffix in ("png", "pdf"):
            assert f"paper_figures/{stem}.{suffix}" in zoo["deps"] and f"paper_figures/{stem}.{suffix}" in default_outs
            assert f"paper_figures/zoo/{stem}.{suffix}" not in outs
    assert "replication/report" in zoo["deps"] and "replication/report" in default["deps"]
