"""The benchmark's own logic (benchmarks/): timing on a fake clock, tables with known numbers, the
feature conversion to the peers' input format, the mapping of params.yaml onto the peers' arguments,
and that the timed loop is the project's training loop. The peer libraries are not imported here
(`make test`'s environment does not have them); nothing trains for more than a second, except one
run of the leaderboard section on tiny data, whose training commands are subprocesses."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import bench, core
from benchmarks.runners import ProjectTrainer, SelectOnValidation, run_project, run_project_together
from replication.data.processed import Processed, Split
from replication.data.synthetic import SyntheticConfig, generate_arrays
from replication.training import TrainConfig, train_seed

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
CARDS = (5, 3, 7)
N_NUM = 4
TASKS = ("income", "marital")


def tiny_data(rows=None, seed: int = 0) -> Processed:
    """A census-shaped data set made here: 3 categorical columns, 4 numeric, 2 binary tasks."""
    rows = rows or {"train": 700, "validation": 300, "test": 300}
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in rows.items():
        x_cat = np.stack([rng.integers(0, c, n) for c in CARDS], axis=1).astype(np.int64)
        x_num = rng.standard_normal((n, N_NUM)).astype(np.float32)
        score = x_num[:, :2] + np.stack([x_cat[:, 0] == 1, x_cat[:, 2] > 3], axis=1) + 0.5 * rng.standard_normal((n, 2))
        y = (score > 0.5).astype(np.float32)
        assert all(set(np.unique(y[:, k])) == {0.0, 1.0} for k in range(2))
        splits[name] = Split(torch.from_numpy(x_cat), torch.from_numpy(x_num), torch.from_numpy(y), y)
    schema = {
        "dataset": "tiny", "task_group": "income-marital", "split_seed": 0, "data_hash": "tiny", "main_task": "income",
        "features": {"categorical": [{"name": f"c{i}", "cardinality": c} for i, c in enumerate(CARDS)],
                     "numeric": [f"n{i}" for i in range(N_NUM)]},
        "tasks": [{"name": t, "type": "binary"} for t in TASKS],
        "splits": {name: {"rows": n} for name, n in rows.items()},
    }
    return Processed(schema, splits)


class FakeClock:
    """A clock that only moves when an epoch 'runs' for its scripted duration."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------------------------------
# Timing


def test_time_epochs_times_only_the_epochs_after_the_warmup() -> None:
    clock, durations, seen = FakeClock(), [9.0, 2.0, 3.0, 1.5, 2.5], []

    def run_epoch(k: int) -> None:
        seen.append(k)
        clock.now += durations[k]

    seconds = core.time_epochs(run_epoch, warmup=1, timed=4, clock=clock)
    assert seen == [0, 1, 2, 3, 4]
    assert seconds == [2.0, 3.0, 1.5, 2.5]
    assert core.median_seconds(seconds) == 2.25


@pytest.mark.parametrize("warmup, timed", [(-1, 3), (1, 0)])
def test_time_epochs_refuses_bad_counts(warmup: int, timed: int) -> None:
    with pytest.raises(ValueError, match="warmup"):
        core.time_epochs(lambda k: None, warmup, timed)


def test_median_needs_three_timed_epochs() -> None:
    assert core.median_seconds([4.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError, match="at least 3"):
        core.median_seconds([1.0, 2.0])


def test_epoch_seconds_from_callback_marks_drops_the_warmup() -> None:
    marks = [(0.0, 7.0), (7.5, 9.5), (10.0, 13.0), (13.0, 14.5)]
    assert core.epoch_seconds(marks, warmup=1) == [2.0, 3.0, 1.5]
    with pytest.raises(ValueError, match="nothing was timed"):
        core.epoch_seconds(marks[:1], warmup=1)


def test_slowdown_is_peer_over_project() -> None:
    assert core.slowdown(7.5, 1.5) == 5.0
    assert core.slowdown(1.0, 2.0) == 0.5
    with pytest.raises(ValueError):
        core.slowdown(1.0, 0.0)


def test_cpu_busy_seconds_from_proc_stat() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice, in 1/100 s
    text = "cpu  1000 50 300 9000 200 10 20 5 100 0\ncpu0 500 25 150 4500 100 5 10 2 50 0\nintr 1 2 3\n"
    assert core.cpu_busy_seconds(text) == pytest.approx((1000 + 50 + 300 + 10 + 20 + 5) / 100)


def test_others_cores_is_the_machines_busy_time_less_our_own_per_second() -> None:
    assert core.others_cores(busy_seconds=50.0, own_cpu_seconds=20.0, wall_seconds=15.0) == 2.0
    assert core.others_cores(busy_seconds=19.9, own_cpu_seconds=20.0, wall_seconds=10.0) == 0.0  # clock granularity
    with pytest.raises(ValueError):
        core.others_cores(1.0, 0.0, 0.0)


def test_machine_busy_seconds_grow_while_this_process_computes() -> None:
    before = bench.machine_busy_seconds()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert bench.machine_busy_seconds() - before >= 0.2


def test_peak_rss_is_a_positive_number_of_megabytes() -> None:
    assert 10 < core.peak_rss_mb() < 1e6


# --------------------------------------------------------------------------------------------------
# Tables


def fake_result(library: str, model: str, seconds: list[float], aucs=(0.95, 0.99), rss=500.0, tensor_mb=None,
                others=0.04, **extra):
    return {"library": library, "version": "9.9", "model": model, "rows": 1000, "epoch_seconds": seconds,
            "epochs_trained": len(seconds) + 1, "test_auc": dict(zip(TASKS, aucs)), "n_parameters": 12345,
            "tensor_mb": tensor_mb, "peak_rss_mb": rss, "others_cores": others, **extra}


def test_comparison_rows_and_table_with_known_numbers() -> None:
    results = [  # given out of order: the table orders models as MODELS and libraries as LIBRARIES
        fake_result(core.DEEPCTR_TORCH, "mmoe", [3.3, 3.4, 3.2]),
        fake_result(core.PROJECT, "mmoe", [1.0, 1.2, 1.1], aucs=(0.9412, 0.99449), tensor_mb=82.25,
                    validation_seconds=[0.1, 0.3, 0.2]),
        fake_result(core.TORCH_RECHUB, "mmoe", [7.7, 7.4, 7.5, 8.0]),
        fake_result(core.PROJECT, "ple", [2.0, 2.0, 2.0]),
        fake_result(core.TORCH_RECHUB, "ple", [10.0, 10.0, 10.0]),
    ]
    rows = core.comparison_rows(results)
    assert [(r["model"], r["library"]) for r in rows] == [
        ("ple", core.PROJECT), ("ple", core.TORCH_RECHUB),
        ("mmoe", core.PROJECT), ("mmoe", core.TORCH_RECHUB), ("mmoe", core.DEEPCTR_TORCH)]
    by = {(r["model"], r["library"]): r for r in rows}
    assert by["mmoe", core.PROJECT]["seconds_per_epoch"] == 1.1
    assert by["mmoe", core.TORCH_RECHUB]["seconds_per_epoch"] == pytest.approx(7.6)
    assert by["mmoe", core.TORCH_RECHUB]["slowdown_vs_project"] == pytest.approx(7.6 / 1.1)
    assert by["mmoe", core.DEEPCTR_TORCH]["slowdown_vs_project"] == pytest.approx(3.0)
    assert by["ple", core.TORCH_RECHUB]["slowdown_vs_project"] == 5.0
    assert by["mmoe", core.PROJECT]["slowdown_vs_project"] == 1.0
    assert by["mmoe", core.PROJECT]["epoch_seconds"] == "1.0000;1.2000;1.1000"
    assert by["mmoe", core.PROJECT]["validation_seconds_per_epoch"] == pytest.approx(0.2)
    assert by["mmoe", core.PROJECT]["validation_share"] == pytest.approx(0.2 / 1.3)
    assert by["mmoe", core.TORCH_RECHUB]["validation_share"] is None

    table = core.comparison_markdown(rows, TASKS).splitlines()
    assert table[0] == ("| model | library | s/epoch (median) | each process's median (s) | peer / ours | test AUC income | "
                        "test AUC marital | epochs (selected / run) | validation s/epoch (share) | peak RSS (MB) | "
                        "tensors (MB) | parameters | other jobs (cores, max) |")
    assert table[4] == ("| MMoE | mtl-replication 9.9 | 1.10 | 1.10 | 1.00x | 0.9412 | 0.9945 |  | 0.20 (15%) | 500 | "
                        "82.2 | 12,345 | 0.04 |")
    assert table[6] == ("| MMoE | deepctr-torch 9.9 | 3.30 | 3.30 | 3.00x | 0.9500 | 0.9900 |  |  | 500 |  | "
                        "12,345 | 0.04 |")
    assert table[3].startswith("| PLE | torch-rechub 9.9 | 10.00 |") and "| 5.00x |" in table[3]
    assert len(table) == 2 + len(rows)


def test_comparison_rows_with_a_profile_give_a_ratio_against_each_project_run() -> None:
    results = [
        fake_result(core.TORCH_RECHUB, "ple", [6.0, 6.0, 6.0], selected_epoch=20, epochs_trained=23),
        fake_result(core.PROJECT, "ple", [1.5, 1.5, 1.5], profile="fast"),
        fake_result(core.PROJECT, "ple", [2.0, 2.0, 2.0], profile=core.DEFAULT_PROFILE),
    ]
    rows = core.comparison_rows(results)
    assert [(r["library"], r["profile"]) for r in rows] == [
        (core.PROJECT, core.DEFAULT_PROFILE), (core.PROJECT, "fast"), (core.TORCH_RECHUB, "")]
    peer = rows[2]
    assert peer["slowdown_vs_project"] == 3.0 and peer["slowdown_vs_project_fast"] == 4.0
    assert rows[1]["slowdown_vs_project"] == 0.75 and rows[1]["slowdown_vs_project_fast"] == 1.0
    table = core.comparison_markdown(rows, TASKS).splitlines()
    assert "| peer / ours | peer / ours (fast) |" in table[0]
    assert table[3].startswith("| PLE | mtl-replication 9.9 (profiles.fast) | 1.50 | 1.50 | 0.75x | 1.00x |")
    assert "| 3.00x | 4.00x | 0.9500 | 0.9900 | 20 / 23 |" in table[4]


def test_a_row_measured_in_several_processes_takes_the_median_of_medians_and_the_selecting_runs_auc() -> None:
    results = [
        fake_result(core.PROJECT, "mmoe", [1.0, 1.0, 1.0], aucs=(0.94, 0.99), selected_epoch=12, epochs_trained=15),
        fake_result(core.TORCH_RECHUB, "mmoe", [5.0, 5.0, 5.0], selected_epoch=9, epochs_trained=12, others=0.3),
        fake_result(core.PROJECT, "mmoe", [1.6, 1.5, 1.4], aucs=(), epochs_trained=6, rss=900.0),
        fake_result(core.TORCH_RECHUB, "mmoe", [6.0, 6.2, 6.1], aucs=(), epochs_trained=6, others=None),
        fake_result(core.PROJECT, "mmoe", [1.2, 1.2, 1.2], aucs=(), epochs_trained=6),
        fake_result(core.TORCH_RECHUB, "mmoe", [5.5, 5.5, 5.5], aucs=(), epochs_trained=6),
    ]
    ours, peer = core.comparison_rows(results)
    assert ours["processes"] == 3 and ours["process_medians"] == "1.0000;1.5000;1.2000"
    assert ours["seconds_per_epoch"] == 1.2 and peer["seconds_per_epoch"] == 5.5
    assert peer["slowdown_vs_project"] == pytest.approx(5.5 / 1.2)
    assert (ours["test_auc_income"], ours["selected_epoch"], ours["epochs_trained"]) == (0.94, 12, 15)
    assert ours["peak_rss_mb"] == 900.0 and peer["others_cores"] == 0.3
    assert len(ours["epoch_seconds"].split(";")) == 9
    assert "| MMoE | torch-rechub 9.9 | 5.50 | 5.00, 6.10, 5.50 | 4.58x | 0.9500 | 0.9900 | 9 / 12 |" in (
        core.comparison_markdown([ours, peer], TASKS))


def test_the_speed_page_table_is_the_one_bench_csv_gives() -> None:
    import csv

    with open(REPO / "benchmarks" / "results" / "bench.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["section"] == "peers"]
    table = core.summary_markdown(rows, TASKS)
    assert table.splitlines()[0].startswith("| model | this project (default) |")
    assert table in (REPO / "docs" / "speed.md").read_text(encoding="utf-8")


def test_summary_markdown_with_known_numbers() -> None:
    rows = core.comparison_rows([
        fake_result(core.PROJECT, "ple", [2.0, 2.0, 2.0], aucs=(0.9468, 0.99471), profile=core.DEFAULT_PROFILE),
        fake_result(core.PROJECT, "ple", [1.0, 1.0, 1.0], profile="fast"),
        fake_result(core.TORCH_RECHUB, "ple", [6.0, 6.0, 6.0]),
    ])
    assert core.summary_markdown(rows, TASKS).splitlines()[2] == (
        "| PLE | 2.00 s, AUC 0.9468 / 0.9947 | 1.00 s, AUC 0.9500 / 0.9900 | 6.00 s, AUC 0.9500 / 0.9900 (3.00x; 6.00x) |")


def test_comparison_rows_without_the_project_run_leave_the_ratio_blank() -> None:
    rows = core.comparison_rows([fake_result(core.TORCH_RECHUB, "mmoe", [7.0, 7.0, 7.0])])
    assert rows[0]["slowdown_vs_project"] is None
    assert "| 7.00 | 7.00 |  |" in core.comparison_markdown(rows, TASKS)


def test_scaling_rows_give_microseconds_per_row() -> None:
    result = {**fake_result(core.PROJECT, "ple", [2.0, 1.0, 3.0], others=1.5), "rows": 200_000, "data": "census"}
    (row,) = core.scaling_rows([result])
    assert row["seconds_per_epoch"] == 2.0 and row["microseconds_per_row"] == 10.0
    line = core.scaling_markdown([row]).splitlines()[2]
    assert line == "| PLE | census | 200,000 | 2.00 | 2.00, 1.00, 3.00 | 10.00 | 500 |  | 12,345 | 1.50 |"


def test_markdown_table_refuses_a_row_of_the_wrong_width() -> None:
    assert core.markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n"
    with pytest.raises(ValueError, match="2 columns"):
        core.markdown_table(["a", "b"], [["1"]])


def test_csv_holds_every_sections_columns_and_blanks_for_none() -> None:
    rows = [{"section": "peers", "model": "mmoe", "tensor_mb": None}, {"section": "scaling", "model": "ple", "rows": 5}]
    assert core.csv_columns(rows) == ["section", "model", "tensor_mb", "rows"]
    assert bench.csv_text(rows) == "section,model,tensor_mb,rows\npeers,mmoe,,\nscaling,ple,,5\n"


# --------------------------------------------------------------------------------------------------
# The same arrays for every library


def test_feature_specs_follow_the_project_column_order() -> None:
    specs = core.feature_specs(tiny_data().schema)
    assert [(s.name, s.kind, s.cardinality) for s in specs] == [
        ("c0", "sparse", 5), ("c1", "sparse", 3), ("c2", "sparse", 7),
        ("n0", "dense", 0), ("n1", "dense", 0), ("n2", "dense", 0), ("n3", "dense", 0)]


def test_peer_columns_round_trip_to_the_same_arrays() -> None:
    data = tiny_data()
    specs = core.feature_specs(data.schema)
    for split in data.splits.values():
        x_cat, x_num = split.x_cat.numpy(), split.x_num.numpy()
        columns = core.to_columns(x_cat, x_num, specs)
        assert list(columns) == [s.name for s in specs]
        assert all(c.shape == (split.rows,) for c in columns.values())
        assert columns["c1"].dtype == np.int64 and columns["n2"].dtype == np.float32
        assert np.shares_memory(columns["c0"], x_cat) and np.shares_memory(columns["n0"], x_num)  # views, no copies
        back_cat, back_num = core.from_columns(columns, specs)
        np.testing.assert_array_equal(back_cat, x_cat)
        np.testing.assert_array_equal(back_num, x_num)
        assert back_cat.dtype == x_cat.dtype and back_num.dtype == x_num.dtype


def test_peer_columns_refuse_arrays_that_do_not_match_the_schema() -> None:
    specs = core.feature_specs(tiny_data().schema)
    with pytest.raises(ValueError, match="do not match"):
        core.to_columns(np.zeros((4, 2), np.int64), np.zeros((4, N_NUM), np.float32), specs)


def test_missing_labels_are_refused_for_the_peers() -> None:
    core.check_labels(np.array([[0.0, 1.0]]), "train")
    with pytest.raises(ValueError, match="1 missing label"):
        core.check_labels(np.array([[0.0, np.nan]]), "train")


# --------------------------------------------------------------------------------------------------
# params.yaml in the peers' terms


def test_peer_arguments_carry_the_sizes_of_params_yaml() -> None:
    _, mmoe = bench.training_setup(REPO / "params.yaml", "mmoe")
    _, ple = bench.training_setup(REPO / "params.yaml", "ple")
    _, sb = bench.training_setup(REPO / "params.yaml", "shared_bottom")
    towers = [{"dims": list(mmoe["tower_units"]), "dropout": 0.0}] * 2
    assert core.rechub_arguments("mmoe", mmoe, 2) == {
        "n_expert": mmoe["n_experts"], "expert_params": {"dims": list(mmoe["expert_units"]), "dropout": 0.0},
        "tower_params_list": towers}
    assert core.rechub_arguments("ple", ple, 2) | {"tower_params_list": None} == {
        "n_level": ple["n_levels"], "n_expert_specific": ple["n_task_experts"],
        "n_expert_shared": ple["n_shared_experts"], "expert_params": {"dims": list(ple["expert_units"]), "dropout": 0.0},
        "tower_params_list": None}
    assert core.rechub_arguments("shared_bottom", sb, 2)["bottom_params"]["dims"] == list(sb["bottom_units"])

    d_mmoe = core.deepctr_arguments("mmoe", mmoe)
    assert (d_mmoe["num_experts"], d_mmoe["expert_dnn_hidden_units"], d_mmoe["tower_dnn_hidden_units"]) == (
        mmoe["n_experts"], tuple(mmoe["expert_units"]), tuple(mmoe["tower_units"]))
    d_ple = core.deepctr_arguments("ple", ple)
    assert (d_ple["num_levels"], d_ple["specific_expert_num"], d_ple["shared_expert_num"]) == (
        ple["n_levels"], ple["n_task_experts"], ple["n_shared_experts"])
    assert core.deepctr_arguments("shared_bottom", sb)["bottom_dnn_hidden_units"] == tuple(sb["bottom_units"])
    for args in (d_mmoe, d_ple):
        assert args["gate_dnn_hidden_units"] == ()  # a linear gate, as the project's
        assert args["l2_reg_embedding"] == 0.0 and args["dnn_use_bn"] is False and args["dnn_dropout"] == 0.0
    assert mmoe["embedding_dim"] == 8  # the census embedding size the README states


@pytest.mark.parametrize("mapping", [core.rechub_arguments, core.deepctr_arguments])
def test_peer_arguments_refuse_a_model_the_peers_lack(mapping) -> None:
    args = ("cgc", {}, 2) if mapping is core.rechub_arguments else ("cgc", {})
    with pytest.raises(ValueError, match="no counterpart of 'cgc'"):
        mapping(*args)


# --------------------------------------------------------------------------------------------------
# What is timed is what the project runs


def test_project_trainer_reproduces_train_seed_exactly() -> None:
    """The timed loop gives train_seed's training losses, epoch by epoch, and its test predictions
    for the epoch train_seed selects: the same computation, not a look-alike."""
    data = tiny_data()
    hparams = {"n_experts": 3, "expert_units": (16,), "tower_units": (8,), "embedding_dim": 4}
    cfg = TrainConfig(max_epochs=3, patience=5, batch_size=128, device="cpu", eval_batch_size=4096, seed_workers=1,
                      num_threads=1)
    record, test_prediction = train_seed("mmoe", hparams, data, cfg, 7, torch.device("cpu"), show_epochs=False)

    trainer = ProjectTrainer("mmoe", hparams, data, cfg, [7])
    losses, predictions = [], []
    for _ in range(cfg.max_epochs):
        losses.append(trainer.run_epoch())
        predictions.append(trainer.predict(data.splits["test"]))
    assert losses == [entry["train_loss"] for entry in record["history"]]
    best = record["best_epoch"]["income"]
    np.testing.assert_array_equal(predictions[best - 1], test_prediction)
    assert trainer.epochs_run == 3
    assert trainer.tensor_mb(data) > 0


def test_run_project_selects_and_stops_as_train_seed_does() -> None:
    """This project's bench run is train_seed itself under the bench's stopping rule (the one every
    library gets): it picks train_seed's epoch, stops when it stops, reads the same test AUCs, and
    reports the loop's own training and validation seconds of the epochs after the warm-up."""
    data = tiny_data()
    hparams = {"n_experts": 3, "expert_units": (16,), "tower_units": (8,), "embedding_dim": 4}
    cfg = TrainConfig(lr=0.01, max_epochs=40, patience=2, batch_size=128, device="cpu", eval_batch_size=4096,
                      seed_workers=1, num_threads=1)
    record, _ = train_seed("mmoe", hparams, data, cfg, 3, torch.device("cpu"), show_epochs=False)
    assert 4 <= record["epochs_run"] < cfg.max_epochs  # stopped early, after the bench's timed epochs
    out = run_project("mmoe", hparams, data, cfg, warmup=1, timed=3, seed=3)
    assert out["selected_epoch"] == record["best_epoch"]["income"] == record["best_epoch"]["marital"]
    assert out["epochs_trained"] == record["epochs_run"]
    assert out["test_auc"] == {t: record["test"][t]["auc"] for t in TASKS}
    assert len(out["epoch_seconds"]) == 3 and len(out["validation_seconds"]) == 3
    assert all(s > 0 for s in out["epoch_seconds"] + out["validation_seconds"])
    timing = run_project("mmoe", hparams, data, cfg, warmup=1, timed=3, seed=3, select=False)
    assert timing["epochs_trained"] == 4 and timing["test_auc"] == {} and "selected_epoch" not in timing


def scripted_selector(val_scores: list[float], cfg: TrainConfig, min_epochs: int) -> SelectOnValidation:
    """A selector over tiny_data whose epoch k's validation predictions score ``val_scores[k - 1]``
    (the mean AUC of two tasks ranked alike) and whose test predictions are filled with k."""
    data = tiny_data()
    y_val = data.splits["validation"].y_numpy
    epoch = {"k": 0}

    def predict(split: str) -> np.ndarray:
        if split == "test":
            return np.full((data.splits["test"].rows, 2), float(epoch["k"]))
        score = val_scores[epoch["k"] - 1]  # AUC = score: a fraction of rows ranked by label, the rest flipped
        rng = np.random.default_rng(epoch["k"])
        flip = rng.random(y_val.shape) > (2 * score - 1)
        return np.where(flip, rng.random(y_val.shape), y_val + rng.random(y_val.shape))

    selector = SelectOnValidation(predict, data, cfg, min_epochs)
    original = selector.after_epoch

    def after_epoch(k: int) -> bool:
        epoch["k"] = k
        return original(k)

    selector.after_epoch = after_epoch  # type: ignore[method-assign]
    return selector


def test_selection_stops_after_patience_but_not_before_min_epochs() -> None:
    cfg = TrainConfig(max_epochs=50, patience=2)
    selector = scripted_selector([0.6, 0.9, 0.7, 0.7, 0.7, 0.7], cfg, min_epochs=5)
    stops = [selector.after_epoch(k) for k in range(1, 6)]
    assert stops == [False, False, False, False, True]  # patience ran out at epoch 4; min_epochs held it to 5
    assert selector.group.epoch == 2 and selector.epochs_run == 5
    assert np.all(selector.group.state == 2.0)  # the selected epoch's test predictions


def test_selection_stops_at_max_epochs() -> None:
    selector = scripted_selector([0.6, 0.7, 0.8], TrainConfig(max_epochs=3, patience=5), min_epochs=1)
    assert [selector.after_epoch(k) for k in range(1, 4)] == [False, False, True]
    assert selector.group.epoch == 3


def test_train_to_selection_times_only_the_timed_epochs_and_runs_until_the_stop() -> None:
    clock, ran = FakeClock(), []

    class Stop:
        def after_epoch(self, epoch: int) -> bool:
            return epoch == 7

    def run_epoch(k: int) -> None:
        ran.append(k)
        clock.now += 1.0 + k

    seconds = core.time_epochs(run_epoch, warmup=1, timed=3, clock=clock, stop=Stop().after_epoch)
    assert ran == list(range(7))
    assert seconds == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="timed >= 1"):
        core.time_epochs(run_epoch, warmup=0, timed=0, stop=Stop().after_epoch)


def test_synthetic_training_rows_are_the_generators_training_split() -> None:
    generator = {"correlation": 0.5, "scale": 1.0, "n_sines": 10, "noise_std": 0.1, "seed": 3,
                 "validation_fraction": 0.1, "test_fraction": 0.1}
    data = bench.synthetic_training_data(train_rows=1234, dim=5, **generator)
    total = core.total_rows_for_train(1234, 0.1, 0.1, lambda n: SyntheticConfig(0.5, rows=n).split_rows())
    assert SyntheticConfig(0.5, rows=total).split_rows()["train"] == 1234
    x, y, _ = generate_arrays(SyntheticConfig(rows=total, dim=5, **generator))
    train = data.splits["train"]
    assert list(data.splits) == ["train"] and train.rows == 1234 and train.x_cat.shape == (1234, 0)
    np.testing.assert_array_equal(train.x_num.numpy(), x[:1234])
    np.testing.assert_array_equal(train.y_numpy, y[:1234])
    assert [t.type for t in data.tasks] == ["regression", "regression"]


@pytest.mark.parametrize("train_rows", [1_400_000, 1234, 7])
def test_total_rows_for_train_gives_exactly_the_training_rows(train_rows: int) -> None:
    total = core.total_rows_for_train(train_rows, 0.1, 0.1, lambda n: SyntheticConfig(0.5, rows=n).split_rows())
    assert SyntheticConfig(0.5, rows=total).split_rows()["train"] == train_rows
    if train_rows == 1_400_000:
        assert total == 1_750_000


# --------------------------------------------------------------------------------------------------
# The command line


def test_the_bench_says_how_to_create_missing_data(tmp_path: Path, capsys) -> None:
    code = bench.main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert code == 1
    assert "dvc repro prepare" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_bench_refuses_fewer_than_three_timed_epochs(tmp_path: Path, capsys) -> None:
    assert bench.main(["--timed-epochs", "2", "--out", str(tmp_path)]) == 2
    assert "--timed-epochs >= 3" in capsys.readouterr().err


def test_a_measurement_disturbed_by_other_jobs_is_repeated(monkeypatch) -> None:
    args = bench.build_parser().parse_args(["--retries", "2", "--max-other-cores", "0.25"])
    ctx = bench.Context(args, {}, log=lambda line: None)
    loads = iter([1.7, 0.1, 0.0])
    monkeypatch.setattr(bench, "wait_for_quiet", lambda *a, **k: None)
    monkeypatch.setattr(bench.Context, "_measure_once", lambda self, job: {"others_cores": next(loads)})
    assert ctx.measure({"model": "mmoe"}) == {"others_cores": 0.1, "attempts": 2}


def test_a_measurement_is_repeated_at_most_retries_times(monkeypatch) -> None:
    args = bench.build_parser().parse_args(["--retries", "1"])
    ctx = bench.Context(args, {}, log=lambda line: None)
    monkeypatch.setattr(bench, "wait_for_quiet", lambda *a, **k: None)
    monkeypatch.setattr(bench.Context, "_measure_once", lambda self, job: {"others_cores": 1.5})
    assert ctx.measure({"model": "mmoe"}) == {"others_cores": 1.5, "attempts": 2}


def test_parse_rows() -> None:
    assert bench.parse_rows("50000,100_000,all") == [50_000, 100_000, 0]
    with pytest.raises(Exception, match="positive row counts"):
        bench.parse_rows("-5")


def test_sections_are_named_functions_in_order() -> None:
    assert [s.name for s in bench.SECTIONS] == ["peers", "profile_auc", "scaling", "together", "weighting",
                                                 "leaderboard"]
    assert all(callable(s.run) for s in bench.SECTIONS)


def test_the_benchmark_modules_do_not_import_the_peers() -> None:
    assert "torch_rechub" not in sys.modules and "deepctr_torch" not in sys.modules


def test_seeds_together_rows_give_the_per_seed_speed_up_over_one_lone_run():
    results = [
        {"model": "mmoe", "together": 1, "epoch_seconds": [1.0, 1.2, 1.1], "peak_rss_mb": 500, "n_parameters": 10},
        {"model": "mmoe", "together": 4, "epoch_seconds": [4.0, 4.4, 3.6], "peak_rss_mb": 600, "n_parameters": 10},
        {"model": "ple", "together": 10, "epoch_seconds": [10.0, 8.0, 9.0], "peak_rss_mb": 700, "n_parameters": 20},
    ]
    rows = {(r["model"], r["together"]): r for r in core.together_rows(results)}
    assert rows[("mmoe", 1)]["speedup_per_seed"] == pytest.approx(1.0)
    assert rows[("mmoe", 4)]["seconds_per_seed_epoch"] == pytest.approx(1.0)
    assert rows[("mmoe", 4)]["speedup_per_seed"] == pytest.approx(1.1)  # a lone epoch 1.1 s, 1.0 s per seed together
    assert rows[("ple", 10)]["speedup_per_seed"] is None  # no lone run measured
    text = core.together_markdown(list(rows.values()))
    assert "| MMoE | 4 | 1 | 4.00 | 4.00 | 1.000 | 1.10x |" in text


def test_weighting_rows_give_each_methods_cost_relative_to_equal_weights_on_the_same_model() -> None:
    def measured(model: str, method: str, seconds: list[float]) -> dict:
        return {"model": model, "weighting": method, "epoch_seconds": seconds, "validation_seconds": [0.1, 0.3, 0.2],
                "peak_rss_mb": 500, "n_parameters": 10}

    rows = core.weighting_rows([measured("mmoe", "static", [1.0, 1.2, 1.1]), measured("mmoe", "pcgrad", [2.0, 2.4, 2.2]),
                                measured("ple", "famo", [3.0, 3.0, 3.0])])
    by = {(r["model"], r["weighting"]): r for r in rows}
    assert by[("mmoe", "static")]["relative_to_equal"] == pytest.approx(1.0)
    assert by[("mmoe", "pcgrad")]["relative_to_equal"] == pytest.approx(2.0)  # 2.2 s against 1.1 s
    assert by[("ple", "famo")]["relative_to_equal"] is None  # no equal weights measured for PLE
    assert by[("mmoe", "pcgrad")]["validation_share"] == pytest.approx(0.2 / 2.4)
    text = core.weighting_markdown(rows)
    assert "| MMoE | `pcgrad` | 2.20 | 2.00, 2.40, 2.20 | 2.00x | 0.20 (8%) | 500 |  |" in text
    assert "| PLE | `famo` | 3.00 | 3.00, 3.00, 3.00 |  |" in text


def test_the_weighting_section_refuses_an_unknown_method(tmp_path: Path, capsys) -> None:
    code = bench.main(["--sections", "weighting", "--weighting-methods", "pcgrad,nosuch", "--out", str(tmp_path)])
    assert code == 2
    assert "no method nosuch" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def fake_record(model: str, seed: int, aucs: tuple[float, float], seconds: float = 10.0) -> dict:
    return {"model": model, "seed": seed, "tasks": [{"name": t, "type": "binary"} for t in TASKS],
            "test": {t: {"auc": a} for t, a in zip(TASKS, aucs)}, "seconds": seconds}


def test_profile_auc_rows_pair_seeds_and_give_the_difference_with_its_interval() -> None:
    reference = [fake_record("ple", s, (0.94 + 0.001 * s, 0.99)) for s in range(4)]
    profiled = [fake_record("ple", s, (0.94 + 0.001 * s + d, 0.99), seconds=6.0)
                for s, d in zip(range(1, 4), (0.0002, 0.0004, 0.0006))]
    profiled.append(fake_record("ple", 4, (0.5, 0.5)))  # seeds 1-3 paired; 0 and 4 unpaired, left out
    rows = core.profile_auc_rows(reference, profiled, "fast")
    income = rows[0]
    assert (income["task"], income["seeds"], income["unpaired_seeds"]) == ("income", 3, 2)
    assert income["default_mean"] == pytest.approx(0.942) and income["profile_mean"] == pytest.approx(0.9424)
    assert income["difference"] == pytest.approx(0.0004)
    half = 4.302653 * 0.0002 / np.sqrt(3)  # t(0.975, 2) * sample std of (2, 4, 6)e-4 / sqrt(3)
    assert income["difference_low"] == pytest.approx(0.0004 - half, rel=1e-5)
    assert income["difference_high"] == pytest.approx(0.0004 + half, rel=1e-5)
    assert income["default_train_seconds"] == 30.0 and income["profile_train_seconds"] == 18.0
    assert rows[1]["difference"] == 0.0 and rows[1]["task"] == "marital"
    line = core.profile_auc_markdown(rows).splitlines()[2]
    assert line == ("| PLE | fast | income | 3 (2 unpaired) | 0.9420 ± 0.0010 | 0.9424 ± 0.0012 | +0.0004 [-0.0001, +0.0009] "
                    "| 0.0742 | 30 / 18 |")  # t = 0.0004 / (0.0002 / sqrt 3) = 3.46 on 2 df


def test_profile_auc_rows_refuse_too_few_paired_seeds() -> None:
    with pytest.raises(ValueError, match="1 seed"):
        core.profile_auc_rows([fake_record("ple", 0, (0.9, 0.9))], [fake_record("ple", 0, (0.9, 0.9))], "fast")
    with pytest.raises(ValueError, match="no default runs of mmoe"):
        core.profile_auc_rows([fake_record("ple", 0, (0.9, 0.9))], [fake_record("mmoe", 0, (0.9, 0.9))], "fast")


def test_a_lone_run_measured_in_several_processes_is_the_median_of_their_medians():
    lone = [[1.0, 1.0, 1.0], [1.4, 1.3, 1.5], [0.9, 1.2, 1.1]]  # process medians 1.0, 1.4, 1.1
    results = [{"model": "ple", "together": 1, "epoch_seconds": s, "peak_rss_mb": 500 + k, "n_parameters": 20,
                "others_cores": 0.1 * k} for k, s in enumerate(lone)]
    results.append({"model": "ple", "together": 10, "epoch_seconds": [10.0, 10.0, 10.0], "peak_rss_mb": 700,
                    "n_parameters": 20})
    rows = core.together_rows(results)
    assert [(r["together"], r["processes"]) for r in rows] == [(1, 3), (10, 1)]
    assert rows[0]["seconds_per_epoch"] == 1.1 and rows[0]["process_medians"] == "1.0000;1.4000;1.1000"
    assert rows[0]["peak_rss_mb"] == 502 and rows[0]["others_cores"] == pytest.approx(0.2)
    assert rows[1]["speedup_per_seed"] == pytest.approx(1.1)
    assert "| PLE | 1 | 3 | 1.10 | 1.00, 1.40, 1.10 | 1.100 | 1.00x |" in core.together_markdown(rows)


def test_the_bound_on_seeds_together_pays_the_lone_runs_fixed_cost_once():
    lone = [[2.0, 2.0, 2.0], [2.2, 2.2, 2.2], [1.8, 1.8, 1.8]]  # pooled lone epoch 2.0 s
    fixed = [[0.5, 0.5, 0.5], [0.4, 0.4, 0.4], [0.6, 0.6, 0.6]]  # pooled fixed cost 0.5 s
    results = [{"model": "mmoe", "together": 1, "epoch_seconds": s, "fixed_seconds": f, "peak_rss_mb": 500,
                "n_parameters": 10} for s, f in zip(lone, fixed)]
    results.append({"model": "mmoe", "together": 10, "epoch_seconds": [19.0] * 3, "peak_rss_mb": 600, "n_parameters": 10})
    lone_row, ten = core.together_rows(results)
    assert lone_row["fixed_seconds_per_epoch"] == 0.5 and lone_row["speedup_bound"] == pytest.approx(1.0)
    # 10 seeds: each pays the 1.5 s of arithmetic and a tenth of the 0.5 s fixed part at best
    assert ten["speedup_bound"] == pytest.approx(2.0 / (1.5 + 0.05))
    assert ten["speedup_per_seed"] == pytest.approx(2.0 / 1.9)
    assert "| MMoE | 10 | 1 | 19.00 | 19.00 | 1.900 | 1.05x | 0.500 | 1.29x |" in core.together_markdown([ten])
    assert "| MMoE | 1 | 3 | 2.00 | 2.00, 2.20, 1.80 | 2.000 | 1.00x | 0.500 | 1.00x |" in core.together_markdown([lone_row])


def test_a_lone_run_of_the_seeds_together_section_also_times_its_fixed_cost():
    data = tiny_data()
    out = run_project_together("mmoe", {"expert_units": [8], "tower_units": [4]}, data,
                               TrainConfig(batch_size=512), warmup=0, timed=2, seed=0, together=1)
    assert out["together"] == 1 and len(out["epoch_seconds"]) == 2 and len(out["fixed_seconds"]) == 2
    assert all(s > 0 for s in out["fixed_seconds"])


def test_the_fixed_cost_run_takes_a_full_epochs_steps_of_a_few_rows_each(monkeypatch):
    from benchmarks import runners

    seen = []
    real = runners.ProjectTrainer.run_epoch
    monkeypatch.setattr(runners.ProjectTrainer, "run_epoch",
                        lambda self: seen.append((self.train.rows, self.cfg.batch_size)) or real(self))
    data = tiny_data()
    runners.fixed_cost_seconds("mmoe", {"expert_units": [8], "tower_units": [4]}, data, TrainConfig(batch_size=512),
                               warmup=1, timed=1, seed=0)
    steps = -(-data.splits["train"].rows // 512)
    assert seen == [(steps * core.FIXED_COST_BATCH, core.FIXED_COST_BATCH)] * 2


def test_an_ensemble_epoch_of_the_bench_runs_the_ensemble_trainer():
    out = run_project_together("mmoe", {"expert_units": [8], "tower_units": [4]}, tiny_data(),
                                       TrainConfig(batch_size=512), warmup=0, timed=1, seed=0, together=3)
    assert out["together"] == 3 and len(out["epoch_seconds"]) == 1 and out["epoch_seconds"][0] > 0


# --------------------------------------------------------------------------------------------------
# The leaderboard's time


def write_tiny_data(folder: Path) -> Path:
    """tiny_data() as a processed folder on disk, its schema's hash matching its arrays."""
    from replication.data.processed import SPLITS, data_hash
    from replication.io import save_npz, write_json

    data = tiny_data()
    folder.mkdir(parents=True)
    for name in SPLITS:
        split = data.splits[name]
        save_npz(folder / f"{name}.npz", x_cat=split.x_cat.numpy(), x_num=split.x_num.numpy(), y=split.y_numpy)
    write_json(folder / "schema.json", {**data.schema, "data_hash": data_hash(folder)})
    return folder


def test_leaderboard_rows_and_table_with_known_numbers() -> None:
    records = [{"seconds": 4.0, "epochs_run": 5, "train": {"ensemble": 2}, "environment": {"device": "cuda:0 (H)"}},
               {"seconds": 4.0, "epochs_run": 8, "train": {"ensemble": 2}, "environment": {"device": "cuda:0 (H)"}}]
    rows = [core.leaderboard_row("census", "mmoe", None, 30.0, records),
            core.leaderboard_row("sweep data", "", 0.5, 6.0, []),
            core.leaderboard_row("sweep", "ple", 0.5, 90.0, records)]
    assert rows[0]["seeds"] == 2 and rows[0]["train_seconds"] == 8.0 and rows[0]["epochs_run"] == 6.5
    text = core.leaderboard_markdown(rows)
    assert "| census |  | MMoE | 2 | 30 | 8 | 6.5 | 2 | cuda:0 (H) |" in text
    assert "| sweep data | 0.5 |  |  | 6 |  |  |  |  |" in text
    assert "- census: 30 s (0.5 min)\n- sweep: 96 s (1.6 min)" in text
    assert text.endswith("Device: cuda:0 (H).\n")


def test_the_leaderboard_section_runs_only_when_named() -> None:
    assert "leaderboard" not in bench.build_parser().parse_args([]).sections
    assert bench.build_parser().parse_args(["--sections", "leaderboard"]).sections == ["leaderboard"]


def test_the_leaderboard_section_trains_every_model_and_the_sweep_with_the_trainer(tmp_path: Path) -> None:
    import yaml

    from replication.config import load_params

    params = load_params(bench.DEFAULT_PARAMS)
    params["synthetic"] = {**params["synthetic"], "rows": 2000, "dim": 8, "models": ["single_task"]}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    data = write_tiny_data(tmp_path / "data")
    code = bench.main(["--sections", "leaderboard", "--data", str(data), "--params", str(params_file),
                       "--out", str(tmp_path / "out"), "--leaderboard-models", "mmoe,shared_bottom",
                       "--leaderboard-seeds", "0-1", "--sweep-correlations", "0.5",
                       "--leaderboard-set", "train.max_epochs=1", "--leaderboard-set", "train.ensemble=2",
                       "--leaderboard-set", "model_common.embedding_dim=4"])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "out" / "bench.csv").open()))
    assert [(r["part"], r["model"], r["correlation"], r["seeds"]) for r in rows] == [
        ("census", "mmoe", "", "2"), ("census", "shared_bottom", "", "2"),
        ("sweep data", "", "0.5", "0"), ("sweep", "single_task", "0.5", "2")]
    assert all(float(r["seconds"]) > 0 for r in rows)
    trained = [r for r in rows if r["seeds"] == "2"]
    assert all(r["ensemble"] == "2" and r["epochs_run"] == "1.0" and r["device"].startswith("cpu") for r in trained)
    report = (tmp_path / "out" / "bench.md").read_text()
    assert "## The leaderboard's time" in report and "`train.ensemble=2`" in report


def test_the_gpu_script_needs_a_mirror_and_a_gpu(tmp_path: Path) -> None:
    import os
    import subprocess

    script = REPO / "benchmarks" / "gpu_leaderboard.sh"
    env = {k: v for k, v in os.environ.items() if k != "MIRROR"}
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "set MIRROR to a folder holding the census files" in done.stderr
    env = {**env, "MIRROR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "", "OUT": str(tmp_path / "out"),
           "PYTHON": sys.executable}
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "no GPU visible to torch" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_weighting_page_costs_are_the_ones_bench_csv_gives() -> None:
    from replication.weighting import available_weightings

    with open(REPO / "benchmarks" / "results" / "weighting" / "bench.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["section"] == "weighting"]
    page = " ".join((REPO / "docs" / "weighting.md").read_text(encoding="utf-8").split())
    for model, name in (("mmoe", "MMoE"), ("ple", "PLE")):
        costs = sorted(((float(r["relative_to_equal"]), r["weighting"]) for r in rows
                        if r["model"] == model and r["weighting"] != "static"), key=lambda c: c[0])
        assert len(costs) == len(available_weightings()) - 1  # every method but static
        listed = ", ".join(f"`{method}` {ratio:.2f}x" for ratio, method in costs)
        assert f"for {name} {listed}" in page


@pytest.mark.parametrize("flags, expected", [("fpu avx2 fma", ["default"]), ("fpu avx2 avx512_bf16", ["default", "fast"])])
def test_the_fast_profile_is_measured_by_default_only_where_the_cpu_has_bf16(flags, expected, tmp_path, monkeypatch,
                                                                             capsys) -> None:
    from replication import provenance

    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="utf-8")
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = REPO / "params.yaml"
    assert bench.project_profiles(None, params) == expected
    left_out = "bench: leaving out profiles.fast (train.precision is bf16, but this CPU has no bfloat16 instructions"
    assert (left_out in capsys.readouterr().err) == (expected == ["default"])
    # Named, it is measured all the same, with the warning.
    assert bench.project_profiles(["default", "fast"], params) == ["default", "fast"]
    assert ("bench: profiles.fast: warning: train.precision is bf16" in capsys.readouterr().err) == (expected == ["default"])
