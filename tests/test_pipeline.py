"""End to end through the command line users call: download -> prepare -> train -> aggregate.

Trains on a slice of the real mirrored data so the whole path runs in seconds.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from replication.cli import main
from replication.data.processed import SPLITS, data_hash
from replication.io import save_npz, write_json
from tests.conftest import MIRROR, REPO

ROWS = {"train": 4000, "validation": 3000, "test": 3000}


def slice_processed(src, dst):
    """Copy a processed directory keeping the first rows of each split, with a consistent schema."""
    schema = json.loads((src / "schema.json").read_text())
    for split in SPLITS:
        with np.load(src / f"{split}.npz") as arrays:
            save_npz(dst / f"{split}.npz", **{k: arrays[k][: ROWS[split]] for k in arrays.files})
        schema["splits"][split]["rows"] = ROWS[split]
    schema["data_hash"] = data_hash(dst)
    write_json(dst / "schema.json", schema)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    assert main(["download", "census", "--out", str(root / "raw"), "--mirror", str(MIRROR)]) == 0
    assert main(["prepare", "census", "--raw", str(root / "raw"), "--out", str(root / "full"), "--split-seed", "3"]) == 0
    slice_processed(root / "full", root / "data")
    for model in ("single_task", "ple"):
        code = main(["train", "--data", str(root / "data"), "--model", model, "--seeds", "0-1",
                     "--out", str(root / "runs" / model), "--set", "train.max_epochs=2",
                     "--set", "train.batch_size=128", "--set", "model_common.embedding_dim=4"])
        assert code == 0
    assert main(["aggregate", "--runs", str(root / "runs"), "--out", str(root / "table")]) == 0
    assert main(["stats", "--runs", str(root / "runs"), "--out", str(root / "stats")]) == 0
    assert main(["stats", "--runs", str(root / "runs"), "--out", str(root / "stats_two"),
                 "--reference", "single_task", "--reference", "ple"]) == 0
    assert main(["experts", "--runs", str(root / "runs"), "--out", str(root / "experts.csv")]) == 0
    return root


def test_pipeline_writes_records_predictions_and_table(pipeline):
    for model in ("single_task", "ple"):
        names = sorted(p.name for p in (pipeline / "runs" / model).iterdir())
        assert names == ["seed_0.json", "seed_0.test_predictions.npz", "seed_1.json", "seed_1.test_predictions.npz"]
    record = json.loads((pipeline / "runs" / "ple" / "seed_1.json").read_text())
    assert record["split_seed"] == 3 and record["train"]["max_epochs"] == 2 and record["epochs_run"] <= 2
    assert record["hparams"]["n_levels"] == 2  # read from params.yaml's models.ple section
    # model_common reaches every model: one key overridden on the command line, one from params.yaml
    assert record["hparams"]["embedding_dim"] == 4 and record["hparams"]["embedding_std"] == 0.01
    table = pd.read_csv(pipeline / "table.csv")
    assert sorted(zip(table["model"], table["task"])) == [
        ("ple", "income"), ("ple", "marital"), ("single_task", "income"), ("single_task", "marital")]
    assert (table["n_seeds"] == 2).all()
    assert table["mean"].between(0.5, 1.0).all()
    with np.load(pipeline / "runs" / "ple" / "seed_0.test_predictions.npz") as saved:
        assert saved["prediction"].shape == (ROWS["test"], 2)
        assert ((saved["prediction"] >= 0) & (saved["prediction"] <= 1)).all()


def test_stats_writes_tidy_tables_that_agree_with_the_results_table(pipeline):
    names = sorted(p.name for p in (pipeline / "stats").iterdir())
    assert names == ["comparisons.csv", "delong.csv", "delta_m.csv", "per_model.csv", "summary.md"]
    comparisons = pd.read_csv(pipeline / "stats" / "comparisons.csv").set_index(["model", "task"])
    assert list(comparisons.index) == [("ple", "income"), ("ple", "marital")]
    assert (comparisons["n_pairs"] == 2).all()
    delong = pd.read_csv(pipeline / "stats" / "delong.csv")
    assert len(delong) == 4 and delong["pvalue"].between(0, 1).all()  # 2 seeds x 2 tasks
    table = pd.read_csv(pipeline / "table.csv").set_index(["model", "task"])
    for key in comparisons.index:
        assert table.loc[key, "mtl_gain"] == pytest.approx(comparisons.loc[key, "gain"], rel=1e-5)
        assert table.loc[key, "pvalue_holm"] == pytest.approx(comparisons.loc[key, "t_pvalue_holm"], rel=1e-5)
        assert table.loc[key, "delong_seeds"] == 2
    assert "cannot reach" in (pipeline / "stats" / "summary.md").read_text()  # 2 pairs: Wilcoxon min p = 0.5


def test_stats_against_two_references_compares_each_way(pipeline):
    both = pd.read_csv(pipeline / "stats_two" / "comparisons.csv").set_index(["reference", "model", "task"])
    one = pd.read_csv(pipeline / "stats" / "comparisons.csv").set_index(["reference", "model", "task"])
    assert sorted(both.index) == [("ple", "single_task", "income"), ("ple", "single_task", "marital"),
                                  ("single_task", "ple", "income"), ("single_task", "ple", "marital")]
    pd.testing.assert_frame_equal(both.loc[["single_task"]], one)  # the first reference's rows are unchanged
    for task in ("income", "marital"):
        forward, backward = both.loc[("single_task", "ple", task)], both.loc[("ple", "single_task", task)]
        assert backward["gain"] == pytest.approx(-forward["gain"], abs=1e-9)  # a gain reverses sign
        assert backward["probability_of_improvement"] + forward["probability_of_improvement"] == pytest.approx(1.0)
        assert backward["t_pvalue"] == pytest.approx(forward["t_pvalue"], rel=1e-6)
    summary = (pipeline / "stats_two" / "summary.md").read_text()
    assert "against single_task" in summary and "against ple" in summary


def test_experts_table_has_every_gate_and_expert_of_the_gated_model(pipeline):
    table = pd.read_csv(pipeline / "experts.csv")
    assert set(table["model"]) == {"ple"}  # single_task has no gate
    # params.yaml's PLE: 2 levels, 2 task + 2 shared experts per task; a shared gate on level 1 only.
    sizes = table.groupby(["seed", "level", "gate"]).size().to_dict()
    assert sizes == {(s, 1, "income"): 4 for s in (0, 1)} | {(s, 1, "marital"): 4 for s in (0, 1)} | \
        {(s, 1, "shared"): 6 for s in (0, 1)} | {(s, 2, "income"): 4 for s in (0, 1)} | {(s, 2, "marital"): 4 for s in (0, 1)}
    sums = table.groupby(["seed", "level", "gate"])["mean"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)  # each gate's mean weights sum to 1
    assert (table["std"] >= 0).all()
    income = table[(table["level"] == 1) & (table["gate"] == "income") & (table["seed"] == 0)]
    assert income["expert"].tolist() == ["income/0", "income/1", "shared/0", "shared/1"]
    assert income["expert_kind"].tolist() == ["task-specific"] * 2 + ["shared"] * 2
    record = json.loads((pipeline / "runs" / "ple" / "seed_0.json").read_text())
    assert income["mean"].tolist() == pytest.approx(record["gates_test"]["level1/income"]["mean"], rel=1e-5)


def test_experts_without_a_gated_model_exits_2(pipeline, tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "single_task").mkdir(parents=True)
    for f in (pipeline / "runs" / "single_task").glob("seed_*.json"):
        (runs / "single_task" / f.name).write_text(f.read_text())
    assert main(["experts", "--runs", str(runs), "--out", str(tmp_path / "y.csv")]) == 2
    assert "no gated model" in capsys.readouterr().err
    assert not (tmp_path / "y.csv").exists()


def test_models_lists_every_registered_model_on_one_line(capsys):
    import models

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == models.list_models()
    assert all("(" in line for line in lines)  # each names its paper


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("download", "prepare", "train", "aggregate", "stats", "experts", "models"):
        assert command in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "DATA", "--model", "nope", "--out", "OUT"], "unknown model 'nope'"),
        (["train", "--data", "DATA", "--model", "ple", "--out", "OUT", "--set", "train.max_epochs=0"],
         "train.max_epochs = 0"),
        (["train", "--data", "DATA", "--model", "ple", "--out", "OUT", "--set", "train.epochz=3"],
         "unknown key(s) train.epochz"),
        (["train", "--data", "DATA", "--model", "ple", "--out", "OUT", "--set", "models.ple.n_levls=3"],
         "unknown hyperparameter(s) ['n_levls']"),
        (["train", "--data", "DATA", "--model", "ple", "--out", "OUT", "--seeds", "x"], "--seeds 'x'"),
    ],
)
def test_bad_train_arguments_exit_2_with_a_message(pipeline, argv, message, capsys):
    argv = [str(pipeline / "data") if a == "DATA" else str(pipeline / "bad_out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (pipeline / "bad_out").exists()  # refused before any output


def test_prepare_unknown_task_group_exits_2(pipeline, tmp_path, capsys):
    assert main(["prepare", "census", "--raw", str(pipeline / "raw"), "--out", str(tmp_path / "p"),
                 "--task-group", "income-age"]) == 2
    assert "unknown task group 'income-age'" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_download_without_any_source_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("replication.data.download.UCI_ARCHIVE_URL", "http://127.0.0.1:9/x.zip")
    monkeypatch.setattr("replication.data.download.UCI_LEGACY_URL", "http://127.0.0.1:9/")
    assert main(["download", "census", "--out", str(tmp_path / "raw"), "--mirror", str(tmp_path / "empty"),
                 "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "--mirror" in err and "REPLICATION_DATA_MIRROR" in err
    assert not list((tmp_path / "raw").glob("census-income.*"))


def test_models_readme_parameter_counts_match_the_models_built_from_params_yaml(pipeline):
    """models/README.md states each model's parameter count on census; build every model on the
    prepared schema with params.yaml's sizes and check the written number."""
    import re

    import yaml

    import models
    from tests.conftest import REPO

    schema = json.loads((pipeline / "full" / "schema.json").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    rows = re.findall(r"^\| `(\w+)` \|.*\| ([\d,]+) \|$", (REPO / "models" / "README.md").read_text(), re.M)
    assert sorted(name for name, _ in rows) == models.list_models()
    for name, written in rows:
        model = models.create_model(name, schema, **params["model_common"], **params["models"][name])
        assert sum(p.numel() for p in model.parameters()) == int(written.replace(",", "")), name


# Keys that decide only where and how fast seeds train, never a number (the executors' records are
# the same, tested in test_ray.py and test_train.py): changing them must not make DVC retrain.
NUMBERLESS_TRAIN_KEYS = {"seed_workers", "num_threads", "executor"}


def training_stages():
    """(pipeline file, stage name, stage) of every stage that trains or tunes, over every dvc.yaml."""
    for pipeline in [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]:
        for name, stage in yaml.safe_load(pipeline.read_text(encoding="utf-8"))["stages"].items():
            if re.search(r"python -m replication (train|tune) ", stage["cmd"]):
                yield pipeline, name, stage


def test_every_training_stage_depends_on_every_train_key_that_can_change_a_number():
    """Each stage that trains or tunes lists train.KEY for every TrainConfig field but the execution-only
    ones, so `dvc status` stays clean when only those change, and any other change retrains."""
    from dataclasses import fields

    from replication.training import TrainConfig

    expected = {f"train.{f.name}" for f in fields(TrainConfig)} - {f"train.{k}" for k in NUMBERLESS_TRAIN_KEYS}
    checked = 0
    for pipeline, name, stage in training_stages():
        listed = {p for p in stage.get("params", []) if isinstance(p, str) and p.startswith("train")}
        assert listed == expected, f"{pipeline.relative_to(REPO)} {name}: {sorted(listed ^ expected)}"
        checked += 1
    assert checked >= 9


def test_every_training_stage_depends_on_the_code_of_its_loss_weighting():
    """A stage that trains under params.yaml's train.weighting depends on that method's file and the
    interface (what a run's code digest covers, replication.training.loop.training_code_digest); one that
    sets the method per stage (the weighting grid) depends on the whole package."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    own = {"replication/weighting/__init__.py", "replication/weighting/base.py",
           f"replication/weighting/{params['train']['weighting']}.py"}
    checked = 0
    for pipeline, name, stage in training_stages():
        deps = set(stage["deps"])
        needed = {"replication/weighting"} if "--set train.weighting=" in stage["cmd"] else own
        assert needed <= deps, f"{pipeline.relative_to(REPO)} {name}: missing {sorted(needed - deps)}"
        checked += 1
    assert checked >= 9


def test_run_folders_stay_in_the_dvc_cache_and_search_journals_are_committed():
    """Run folders (records and test predictions) are DVC-cached outputs that git ignores: run outputs stay
    out of git. The tuners' journals are `cache: false` outputs that git carries, so that a search stopped
    on one machine resumes on another (docs/tuning.md)."""
    from tests.pipelines import resolve, stages

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    checked = {"runs": 0, "journals": 0}
    for pipeline in [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]:
        for name, stage, context in stages(pipeline, params):
            for out in stage.get("outs", []):
                path, options = (out, {}) if isinstance(out, str) else next(iter(out.items()))
                path = resolve(path, context)
                kind = "runs" if path.startswith("results/runs/") else "journals" if path.endswith("study.journal") else None
                if kind is None:
                    continue
                where = f"{pipeline.relative_to(REPO)} {name}: {path}"
                ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0
                if kind == "runs":
                    assert options.get("cache", True) is True, f"{where}: a run folder must stay in the DVC cache"
                    assert ignored, f"{where} is not ignored by git"
                else:
                    assert options.get("cache") is False, f"{where}: a journal is committed, not cached"
                    assert not ignored, f"{where} is ignored by git"
                checked[kind] += 1
    assert checked["runs"] >= 50 and checked["journals"] >= 5, checked


def test_every_aggregate_stage_declares_its_json_as_dvc_metrics():
    for pipeline in [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]:
        for name, stage in yaml.safe_load(pipeline.read_text(encoding="utf-8"))["stages"].items():
            if "python -m replication aggregate " in stage["cmd"]:
                out = re.search(r"--out (\S+)", stage["cmd"]).group(1)
                assert [next(iter(m)) for m in stage.get("metrics", [])] == [f"{out}.json"], name
