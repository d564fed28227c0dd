"""Leaderboard, bring your own model (`compare`), the protocol hash, `env` and CITATION.cff.

The leaderboard and protocol tests run on hand-made run records of known values; the `compare` tests
train on a slice of the real data (as tests/test_pipeline.py does) against cached runs of Single-Task
and Shared-Bottom trained once for the module.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import textwrap

import numpy as np
import pandas as pd
import pytest

from models.registry import ModelError, model_spec
from replication.cli import main
from replication.config import ConfigError
from replication.io import write_json
from replication.protocol import loss_weighting, protocol_hash
from tests.conftest import REPO
from tests.test_pipeline import slice_processed

TASKS = ("income", "marital")
TINY = ["--set", "train.max_epochs=2", "--set", "train.batch_size=128", "--set", "train.seed_workers=1",
        "--set", "model_common.embedding_dim=4"]


# --------------------------------------------------------------------------------------------------
# Hand-made records


def fake_record(model: str, seed: int, income: float, marital: float, *, split_seed: int = 0,
                loss_weights: dict | None = None, **train) -> dict:
    return {
        "format": 1, "status": "ok", "model": model, "seed": seed, "dataset": "census",
        "task_group": "income-marital", "split_seed": split_seed, "data_hash": "ab" * 32,
        "tasks": [{"name": t, "type": "binary"} for t in TASKS], "main_task": "income",
        "train": {"lr": 0.001, "batch_size": 1024, "max_epochs": 100, "patience": 3, "selection": "mean",
                  "loss_weights": loss_weights or {}, "loss_weight_decay": {}, "weight_decay": 0.0,
                  "eval_batch_size": 16384, "device": "auto", "seed_workers": 0, "num_threads": 0} | train,
        "test": {"income": {"auc": income}, "marital": {"auc": marital}},
        "validation": {"income": {"auc": income - 0.005}, "marital": {"auc": marital - 0.005}},
        "best_epoch": {t: 3 for t in TASKS}, "n_parameters": 1000 + len(model), "seconds": 10.0 + seed,
        "environment": {"git_commit": "abc123", "device": "cpu (x86_64, 1 threads)", "versions": {}},
    }


# (income, marital) AUC per seed 0, 1, 2. Gains over single_task per seed: strong income +0.02, +0.01,
# +0.03 and marital +0.01, +0.02, +0.03; weak -0.01, -0.02, -0.03 and -0.01, -0.01, -0.02.
VALUES = {
    "single_task": [(0.90, 0.80), (0.91, 0.81), (0.92, 0.82)],
    "strong": [(0.92, 0.81), (0.92, 0.83), (0.95, 0.85)],
    "weak": [(0.89, 0.79), (0.89, 0.80), (0.89, 0.80)],
}
# strong under the loss weighting w0 income=2 (the same protocol).
WEIGHTED = [(0.91, 0.82), (0.93, 0.82), (0.93, 0.83)]


def write_runs(folder, values=VALUES, **record_options) -> None:
    for model, per_seed in values.items():
        for seed, (income, marital) in enumerate(per_seed):
            write_json(folder / model / f"seed_{seed}.json", fake_record(model, seed, income, marital, **record_options))


@pytest.fixture
def two_protocols(tmp_path):
    """Folder a: split seed 0 with single_task, strong, weak, and strong under a loss weighting (its
    own folder, same protocol); folder b: split seed 1, where weak beats strong."""
    write_runs(tmp_path / "a")
    write_runs(tmp_path / "a_weighted", {"strong": WEIGHTED}, loss_weights={"income": 2.0})
    swapped = {"single_task": VALUES["single_task"], "strong": VALUES["weak"], "weak": VALUES["strong"]}
    write_runs(tmp_path / "b", swapped, split_seed=1)
    return tmp_path


def test_leaderboard_writes_ranked_rows_with_gains_significance_and_provenance(two_protocols):
    runs = [str(two_protocols / name) for name in ("a", "a_weighted", "b")]
    out = two_protocols / "board"
    assert main(["leaderboard", *sum((["--runs", r] for r in runs), []), "--out", str(out)]) == 0
    table = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False, na_values=[""])
    expected = {"protocol_hash", "dataset", "task_group", "rank", "model", "loss_weighting", "reference",
                "delta_m_percent", "n_seeds", "seeds", "unpaired_seeds", "n_parameters", "mean_train_seconds",
                "device", "git_commit"}
    for task in TASKS:
        expected |= {f"{task}_auc_mean", f"{task}_auc_std", f"{task}_mtl_gain", f"{task}_mtl_gain_low",
                     f"{task}_mtl_gain_high", f"{task}_pvalue_holm", f"{task}_significant"}
    assert set(table.columns) == expected

    a = table[table["protocol_hash"] == protocol_hash(fake_record("x", 0, 0.5, 0.5))].set_index(["model", "loss_weighting"])
    assert a["rank"].to_dict() == {("strong", "equal"): 1, ("strong", "w0 income=2"): 2, ("single_task", "equal"): 3,
                                   ("weak", "equal"): 4}
    strong = a.loc[("strong", "equal")]
    assert strong["income_auc_mean"] == pytest.approx(0.93) and strong["income_mtl_gain"] == pytest.approx(0.02)
    assert strong["marital_auc_std"] == pytest.approx(np.std([0.81, 0.83, 0.85], ddof=1))
    assert strong["delta_m_percent"] == pytest.approx(100 * (0.02 / 0.91 + 0.02 / 0.81) / 2)
    assert a.loc[("single_task", "equal"), "delta_m_percent"] == 0
    # Holm over the protocol's 6 (entry, task) comparisons: the smallest adjusted p is 6 x the smallest raw one.
    from scipy import stats

    raw = [stats.ttest_rel([v[k] for v in entry], [v[k] for v in VALUES["single_task"]]).pvalue
           for k in range(len(TASKS)) for entry in (VALUES["strong"], VALUES["weak"], WEIGHTED)]
    holm = a[[f"{task}_pvalue_holm" for task in TASKS]].to_numpy()
    assert np.nanmin(holm) == pytest.approx(6 * min(raw), rel=1e-6)
    assert strong["income_significant"] == (strong["income_pvalue_holm"] < 0.05)
    assert (a["n_seeds"] == 3).all() and (a["unpaired_seeds"].isna()).all()
    assert strong["n_parameters"] == 1006 and strong["mean_train_seconds"] == pytest.approx(11.0)
    assert strong["device"] == "cpu (x86_64, 1 threads)" and strong["git_commit"] == "abc123"

    b = table[table["protocol_hash"] != protocol_hash(fake_record("x", 0, 0.5, 0.5))].set_index("model")
    assert b["rank"].to_dict() == {"weak": 1, "single_task": 2, "strong": 3}  # ranked within its own protocol

    markdown = out.with_suffix(".md").read_text()
    sections = markdown.split("## Protocol ")[1:]
    assert len(sections) == 2
    by_split = {"Split seed 0," in section: section for section in sections}
    assert "w0 income=2" in by_split[True] and "w0 income=2" not in by_split[False]  # in its own protocol only
    assert by_split[True].count("| strong |") == 2 and by_split[False].count("| strong |") == 1
    assert "Rank: by Δm against single_task, descending" in markdown


def test_leaderboard_lists_every_distinct_commit_and_reports_unpaired_seeds(tmp_path):
    write_runs(tmp_path / "runs")
    extra = fake_record("strong", 7, 0.95, 0.85)
    extra["environment"]["git_commit"] = "def456-dirty"
    write_json(tmp_path / "runs" / "strong" / "seed_7.json", extra)
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "board")]) == 0
    table = pd.read_csv(tmp_path / "board.csv", dtype={"unpaired_seeds": str}).set_index("model")
    assert table.loc["strong", "git_commit"] == "abc123 | def456-dirty"
    assert table.loc["strong", "n_seeds"] == 4 and table.loc["strong", "unpaired_seeds"] == "7"
    text = (tmp_path / "board.md").read_text()
    assert "seed(s) 7 have no single_task run" in text
    # In Markdown the commits are comma-joined: every row of the table keeps its number of cells.
    row = next(line for line in text.splitlines() if line.startswith("| ") and " strong " in line)
    header = next(line for line in text.splitlines() if line.startswith("| rank"))
    assert "abc123, def456-dirty" in row and row.count("|") == header.count("|")


def test_leaderboard_without_the_reference_exits_2_and_writes_nothing(tmp_path, capsys):
    write_runs(tmp_path / "runs", {"strong": VALUES["strong"]})
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "board")]) == 2
    assert "has no single_task runs" in capsys.readouterr().err
    assert not list(tmp_path.glob("board*"))


def test_leaderboard_refuses_a_run_given_twice(tmp_path, capsys):
    write_runs(tmp_path / "runs")
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--runs", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "board")]) == 2
    assert "pass each run folder once" in capsys.readouterr().err
    assert not list(tmp_path.glob("board*"))


def test_leaderboard_runs_each_reads_every_data_set_folder_as_runs(tmp_path):
    """--runs-each DIR: each sub-folder (a sweep's correlation) is one --runs folder, as if listed."""
    write_runs(tmp_path / "sweep" / "p0.2")
    write_runs(tmp_path / "sweep" / "p0.5", split_seed=1)
    listed = ["--runs", str(tmp_path / "sweep" / "p0.2"), "--runs", str(tmp_path / "sweep" / "p0.5")]
    assert main(["leaderboard", *listed, "--out", str(tmp_path / "listed")]) == 0
    assert main(["leaderboard", "--runs-each", str(tmp_path / "sweep"), "--out", str(tmp_path / "each")]) == 0
    assert (tmp_path / "each.md").read_text(encoding="utf-8") == (tmp_path / "listed.md").read_text(encoding="utf-8")
    assert (tmp_path / "each.md").read_text(encoding="utf-8").count("## Protocol") == 2


def test_leaderboard_runs_each_of_an_empty_folder_exits_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "sweep").mkdir()
    assert main(["leaderboard", "--runs-each", str(tmp_path / "sweep"), "--out", str(tmp_path / "board")]) == 2
    assert "no sub-folders of runs under it" in capsys.readouterr().err
    assert main(["leaderboard", "--out", str(tmp_path / "board")]) == 2
    assert "leaderboard needs run folders: give --runs DIR or --runs-each DIR" in capsys.readouterr().err
    assert not list(tmp_path.glob("board*"))


# --------------------------------------------------------------------------------------------------
# Protocol hash


def test_protocol_hash_is_the_sha256_of_the_canonical_protocol_json():
    record = fake_record("m", 0, 0.9, 0.8)
    canonical = (
        '{"data_hash":"' + "ab" * 32 + '","dataset":"census","format":1,"split_seed":0,'
        '"task_group":"income-marital","tasks":[{"metrics":["auc"],"name":"income","type":"binary"},'
        '{"metrics":["auc"],"name":"marital","type":"binary"}],"train":{"batch_size":1024,"lr":0.001,'
        '"max_epochs":100,"patience":3,"selection":"mean","weight_decay":0.0}}'
    )
    assert protocol_hash(record) == hashlib.sha256(canonical.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("change", "same"), [
    (lambda r: r.update(split_seed=1), False),
    (lambda r: r.update(data_hash="cd" * 32), False),
    (lambda r: r["test"].update(income={"logloss": 0.3}), False),
    (lambda r: r["train"].update(max_epochs=2), False),
    (lambda r: r["train"].update(lr=0.01), False),
    (lambda r: r["train"].update(device="cuda"), True),
    (lambda r: r["train"].update(seed_workers=2), True),
    (lambda r: r["train"].update(num_threads=4), True),
    (lambda r: r["train"].update(executor="ray"), True),
    (lambda r: r["train"].update(eval_batch_size=512), True),
    (lambda r: r["train"].update(loss_weights={"income": 2.0}), True),
    (lambda r: r.update(model="other", seed=5, seconds=99.0), True),
])
def test_protocol_hash_changes_with_what_decides_the_numbers_only(change, same):
    record = fake_record("m", 0, 0.9, 0.8)
    changed = json.loads(json.dumps(record))
    change(changed)
    assert (protocol_hash(changed) == protocol_hash(record)) is same


def test_loss_weighting_is_described_compactly():
    assert loss_weighting(fake_record("m", 0, 0.9, 0.8)) == "equal"
    record = fake_record("m", 0, 0.9, 0.8, loss_weights={"marital": 0.5, "income": 2.0},
                         loss_weight_decay={"marital": 0.9})
    assert loss_weighting(record) == "w0 income=2,marital=0.5; gamma marital=0.9"


# --------------------------------------------------------------------------------------------------
# Loading a model from a spec


def write_model_file(path, body: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_model_spec_names_the_class_and_refuses_what_it_cannot_use(tmp_path):
    example = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "my_model.py")
    spec = model_spec(f"{example}:MyModel")
    assert spec == "mymodel" and spec.source == f"{tmp_path / 'my_model.py'}:MyModel"
    with pytest.raises(ModelError, match="does not exist"):
        model_spec(f"{tmp_path / 'nope.py'}:MyModel")
    with pytest.raises(ModelError, match=r"defines no 'Other'; MTLModel subclasses it defines: MyModel"):
        model_spec(f"{example}:Other")
    with pytest.raises(ModelError, match="is not a subclass of models.base.MTLModel"):
        model_spec(f"{example}:mlp")
    clash = write_model_file(tmp_path / "clash.py", """
        from models.base import MTLModel

        class Clash(MTLModel):
            model_name = "mmoe"
    """)
    with pytest.raises(ModelError, match="'mmoe' is a registered model's; set a different model_name"):
        model_spec(f"{clash}:Clash")
    with pytest.raises(ModelError, match="package.module:ClassName"):
        model_spec("examples/my_model.py")
    syntax = write_model_file(tmp_path / "syntax.py", "import torch\ndef broken(:\n")
    with pytest.raises(ModelError, match=re.escape(f"importing model file {syntax} failed at {syntax}, line 2: SyntaxError")):
        model_spec(f"{syntax}:Broken")
    with pytest.raises(ModelError, match="no module named 'no_such_package.models'; make its package importable"):
        model_spec("no_such_package.models:Model")


# --------------------------------------------------------------------------------------------------
# compare: a model of one's own against cached runs, on a slice of the real data


@pytest.fixture(scope="module")
def cached(census_raw, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    assert main(["prepare", "census", "--raw", str(census_raw), "--out", str(root / "full")]) == 0
    slice_processed(root / "full", root / "data")
    for model in ("single_task", "shared_bottom"):
        assert main(["train", "--data", str(root / "data"), "--model", model, "--seeds", "0-1",
                     "--out", str(root / "runs" / model), *TINY]) == 0
    return root


def compare_argv(cached, model: str, out, seeds: str = "0-1", *extra: str) -> list[str]:
    return ["compare", "--model", model, "--data", str(cached / "data"), "--seeds", seeds,
            "--runs", str(cached / "runs"), "--out", str(out), *TINY, *extra]


def test_compare_trains_a_model_from_outside_the_repo_and_ranks_it_with_significance(cached, tmp_path, capsys):
    model_file = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "elsewhere.py")
    out = tmp_path / "out"
    # Two worker processes (spawned): each imports the model from the file by itself. seed_workers is
    # not part of the protocol, so the cached runs (one worker) stay comparable.
    argv = compare_argv(cached, f"{model_file}:MyModel", out, "0-2", "--set", "train.seed_workers=2")
    assert main(argv) == 0
    printed = capsys.readouterr().out

    records = {s: json.loads((out / "runs" / "mymodel" / f"seed_{s}.json").read_text()) for s in range(3)}
    assert {r["model"] for r in records.values()} == {"mymodel"}  # the stable name, not the path
    assert {r["train"]["seed_workers"] for r in records.values()} == {2}
    assert records[0]["hparams"]["residual_units"] == [32] and records[0]["hparams"]["embedding_dim"] == 4
    cached_record = json.loads((cached / "runs" / "single_task" / "seed_0.json").read_text())
    assert {protocol_hash(r) for r in records.values()} == {protocol_hash(cached_record)}

    def auc(model_records, seed, task):
        return model_records[seed]["test"][task]["auc"]

    single = {s: json.loads((cached / "runs" / "single_task" / f"seed_{s}.json").read_text()) for s in range(2)}
    row = pd.read_csv(out / "leaderboard_row.csv", dtype={"unpaired_seeds": str}).iloc[0]
    assert row["model"] == "mymodel" and row["n_seeds"] == 3 and row["unpaired_seeds"] == "2"
    for task in TASKS:  # the gain is paired on seeds 0 and 1, the only ones single_task has
        paired = np.mean([auc(records, s, task) - auc(single, s, task) for s in range(2)])
        assert row[f"{task}_mtl_gain"] == pytest.approx(paired, rel=1e-5)
        assert row[f"{task}_auc_mean"] == pytest.approx(np.mean([auc(records, s, task) for s in range(3)]), rel=1e-5)
        assert 0 <= row[f"{task}_pvalue_holm"] <= 1
        assert row[f"{task}_significant"] == (row[f"{task}_pvalue_holm"] < 0.05)

    comparisons = pd.read_csv(out / "comparisons.csv", dtype={"unpaired_seeds": str})
    assert sorted(zip(comparisons["reference"], comparisons["task"])) == [
        ("shared_bottom", "income"), ("shared_bottom", "marital"), ("single_task", "income"), ("single_task", "marital")]
    assert (comparisons["n_pairs"] == 2).all() and (comparisons["unpaired_seeds"] == "2").all()
    shared = {s: json.loads((cached / "runs" / "shared_bottom" / f"seed_{s}.json").read_text()) for s in range(2)}
    versus = comparisons.set_index(["reference", "task"])
    for task in TASKS:
        gain = np.mean([auc(records, s, task) - auc(shared, s, task) for s in range(2)])
        assert versus.loc[("shared_bottom", task), "gain"] == pytest.approx(gain, rel=1e-5)
        low, high = versus.loc[("shared_bottom", task), ["gain_low", "gain_high"]]
        assert low <= gain <= high
    # Holm over the family of 4: the smallest adjusted p-value is 4 times the smallest raw one (or 1).
    # (rel 1e-5: the CSV keeps 6 significant digits)
    assert comparisons["t_pvalue_holm"].min() == pytest.approx(min(1.0, 4 * comparisons["t_pvalue"].min()), rel=1e-5)
    assert (comparisons["t_pvalue_holm"] >= comparisons["t_pvalue"] - 1e-12).all()

    assert "| mymodel | equal | 3 |" in printed and "| mymodel | shared_bottom | equal | income | 2 | 2 |" in printed
    summary = (out / "summary.md").read_text()
    assert "**mymodel**" in summary and "seed(s) 2 have no single_task run" in summary
    assert "| single_task |" in summary and "| shared_bottom |" in summary  # the whole protocol's table
    assert sorted(p.name for p in out.iterdir()) == ["comparisons.csv", "leaderboard_row.csv", "runs", "summary.md"]


BROKEN = """
    import torch
    from models.base import MTLModel, MTLOutput

    class Broken(MTLModel):
        def __init__(self, schema, **common):
            super().__init__(schema, **common)
            self.embedding = self.make_embedding()
            self.head = torch.nn.Linear(self.input_dim, 1)

        def forward(self, x_cat, x_num):
            z = self.head(self.embedding(x_cat, x_num))
            return {result}
"""


def test_compare_trains_a_model_under_another_loss_weighting_in_the_same_protocol(cached, tmp_path, capsys):
    """--weighting: the entry's method, recorded and shown; the protocol (and so the pairing) unchanged."""
    out = tmp_path / "out"
    assert main(compare_argv(cached, f"{REPO / 'examples' / 'my_model.py'}:MyModel", out, "0-1",
                             "--weighting", "uncertainty")) == 0
    record = json.loads((out / "runs" / "mymodel" / "seed_0.json").read_text())
    assert record["train"]["weighting"] == "uncertainty" and loss_weighting(record) == "uncertainty"
    assert protocol_hash(record) == protocol_hash(json.loads((cached / "runs" / "single_task" / "seed_0.json").read_text()))
    row = pd.read_csv(out / "leaderboard_row.csv").iloc[0]
    assert row["model"] == "mymodel" and row["loss_weighting"] == "uncertainty"
    assert "| mymodel | uncertainty |" in capsys.readouterr().out
    assert main(compare_argv(cached, f"{REPO / 'examples' / 'my_model.py'}:MyModel", tmp_path / "bad", "0-1",
                             "--weighting", "nope")) == 2
    assert "is not a loss weighting method" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("result", "message"), [
    ('MTLOutput({"income": z.squeeze(-1), "bogus": z.squeeze(-1)}, {})',
     ["outputs lack task(s) ['marital']", "outputs have key(s) ['bogus'] that are not tasks of the data"]),
    ("MTLOutput({t: z for t in self.task_names}, {})", ["outputs['income'] has shape (64, 1); expected (64,)"]),
    ('MTLOutput({t: z.squeeze(-1) * float("nan") for t in self.task_names}, {})',
     ["outputs['income'] is not finite: 64 NaN and 0 inf of 64 values"]),
    ("{t: z.squeeze(-1) for t in self.task_names}", ["forward returned dict, not models.base.MTLOutput"]),
    ('MTLOutput({t: z.squeeze(-1) for t in self.task_names}, {"g": torch.full((len(z), 2), 0.4)})',
     ["gate_experts() labels gates [] but forward returns gates ['g']", "gates['g'] rows sum to 0.8..0.8, not 1"]),
])
def test_compare_refuses_a_model_that_breaks_the_contract_before_writing_anything(cached, tmp_path, capsys,
                                                                                  result, message):
    model_file = write_model_file(tmp_path / "broken.py", BROKEN.format(result=result))
    out = tmp_path / "out"
    assert main(compare_argv(cached, f"{model_file}:Broken", out)) == 2
    err = capsys.readouterr().err
    assert "breaks the model contract" in err
    for part in message:
        assert part in err
    assert not out.exists()


def test_compare_removes_the_runs_of_a_model_whose_training_diverges(cached, tmp_path, capsys):
    model_file = write_model_file(tmp_path / "diverges.py", """
        import torch
        from models.base import MTLModel, MTLOutput

        class Diverges(MTLModel):
            def __init__(self, schema, **common):
                super().__init__(schema, **common)
                self.embedding = self.make_embedding()
                self.head = torch.nn.Linear(self.input_dim, 1)
                self.calls = 0

            def forward(self, x_cat, x_num):
                self.calls += 1  # finite on the contract check's call, NaN in training: the loss diverges
                z = self.head(self.embedding(x_cat, x_num)).squeeze(-1) * (1.0 if self.calls == 1 else float("nan"))
                return MTLOutput({t: z for t in self.task_names}, {})
    """)
    out = tmp_path / "out"
    assert main(compare_argv(cached, f"{model_file}:Diverges", out)) == 2
    assert "training loss became nan in epoch 1; nothing was written" in capsys.readouterr().err
    assert not out.exists()


def test_compare_names_the_file_and_line_where_importing_the_model_failed(cached, tmp_path, capsys):
    model_file = write_model_file(tmp_path / "bad_import.py", """\
        import torch
        from models.base import MTLModel
        import a_package_that_does_not_exist
    """)
    out = tmp_path / "out"
    assert main(compare_argv(cached, f"{model_file}:Broken", out)) == 2
    err = capsys.readouterr().err
    assert f"importing model file {model_file} failed at {model_file}, line 3" in err
    assert "No module named 'a_package_that_does_not_exist'" in err
    assert not out.exists()


def test_compare_refuses_cached_runs_of_another_protocol_listing_both_hashes(cached, tmp_path, capsys):
    model_file = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "my_model.py")
    out = tmp_path / "out"
    assert main(compare_argv(cached, f"{model_file}:MyModel", out, "0-1", "--set", "train.max_epochs=3")) == 2
    err = capsys.readouterr().err
    cached_hash = protocol_hash(json.loads((cached / "runs" / "single_task" / "seed_0.json").read_text()))
    assert f"protocol {cached_hash} (shared_bottom, single_task): differs in train.max_epochs: 2 vs 3" in err
    assert "mymodel would be trained under protocol " in err
    assert not out.exists()


def test_compare_without_processed_data_says_how_to_make_it(cached, tmp_path, capsys):
    model_file = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "my_model.py")
    argv = compare_argv(cached, f"{model_file}:MyModel", tmp_path / "out")
    argv[argv.index("--data") + 1] = str(tmp_path / "no_data")
    assert main(argv) == 2
    assert "run `dvc repro prepare`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# env and CITATION.cff


def test_env_prints_the_environment_block_as_json(capsys):
    assert main(["env", "--device", "cpu"]) == 0
    block = json.loads(capsys.readouterr().out)
    assert set(block) == {"versions", "git_commit", "device", "host", "platform"}
    import torch

    assert block["versions"]["torch"] == torch.__version__ and block["versions"]["python"].count(".") == 2
    assert block["git_commit"] == "unknown" or len(block["git_commit"].removesuffix("-dirty")) == 40
    assert block["device"].startswith("cpu (")


def test_citation_cff_is_valid_cff_1_2_0_and_names_the_papers_and_the_data():
    from cffconvert import Citation

    text = (REPO / "CITATION.cff").read_text()
    Citation(text).validate()  # the CFF 1.2.0 JSON schema shipped with cffconvert; raises if invalid
    with pytest.raises(Exception, match="'massage' was unexpected"):
        Citation(text.replace("message:", "massage:")).validate()  # the check does reject a broken file

    import yaml

    cff = yaml.safe_load(text)
    assert cff["type"] == "software" and cff["authors"] == [{"name": "The MTL replication contributors"}]
    assert cff["license"] == "MIT" and 'license = { text = "MIT" }' in (REPO / "pyproject.toml").read_text()
    # The software is what is cited (no preferred citation); its version and release date are the package's.
    assert "preferred-citation" not in cff
    from replication import __version__

    assert cff["version"] == __version__ and f'version = "{__version__}"' in (REPO / "pyproject.toml").read_text()
    assert str(cff["date-released"]) >= "2026-11-30"
    ple = next(r for r in cff["references"] if r["doi"] == "10.1145/3383313.3412236")
    assert ple["type"] == "article" and (ple["start"], ple["end"]) == (269, 278)
    assert [a["family-names"] for a in ple["authors"]] == ["Tang", "Liu", "Zhao", "Gong"]
    assert {r["doi"] for r in cff["references"]} == {"10.1145/3383313.3412236", "10.24432/C5N30T",
                                                     "10.1145/3219819.3220007"}


def test_train_records_a_model_of_ones_own_under_its_stable_name(cached, tmp_path):
    model_file = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "my_model.py")
    out = tmp_path / "runs" / "mymodel"
    assert main(["train", "--data", str(cached / "data"), "--model", f"{model_file}:MyModel", "--seeds", "0",
                 "--out", str(out), *TINY]) == 0
    record = json.loads((out / "seed_0.json").read_text())
    assert record["model"] == "mymodel"
    source = record["model_source"]  # the exact code: file, class and the file's SHA-256
    assert source == {"file": str(model_file), "class": "MyModel",
                      "sha256": hashlib.sha256((tmp_path / "my_model.py").read_bytes()).hexdigest()}


# --------------------------------------------------------------------------------------------------
# The leaderboard snapshot: the reference runs without predictions, for compare on a fresh clone


def snapshot_of(runs, out) -> list[dict]:
    assert main(["snapshot", "--runs", str(runs), "--out", str(out)]) == 0
    return json.loads(out.read_text())["records"]


def test_snapshot_round_trip_keeps_every_field_compare_and_the_leaderboard_read(tmp_path):
    from replication.leaderboard import leaderboard
    from replication.records import load_all_records
    from replication.snapshot import load_snapshot

    runs = tmp_path / "runs"
    write_runs(runs)
    extra = {"history": [{"epoch": 1, "loss": 0.5}], "gates_test": {"g": [0.5, 0.5]},
             "validation": {"income": {"auc": 0.88}, "marital": {"auc": 0.79}},
             "model_source": {"file": "/x/m.py", "class": "M", "sha256": "cd" * 32}}
    write_json(runs / "strong" / "seed_0.json", fake_record("strong", 0, 0.92, 0.81) | extra)
    failed = fake_record("weak", 3, 0.5, 0.5) | {"status": "failed", "failure": {"epoch": 2, "reason": "loss nan"}}
    write_json(runs / "weak" / "seed_3.json", failed)
    out = tmp_path / "snap" / "census.json"
    text_records = snapshot_of(runs, out)
    assert len(text_records) == 10 and len(out.read_text().splitlines()) == 10 + 7  # one line per record
    assert not any({"history", "gates_test", "source"} & set(r) for r in text_records)
    assert json.loads(out.read_text())["dropped"] == ["gates_test", "history", "source"]

    original = {(r["model"], r["seed"]): r for r in load_all_records(runs)}
    restored = {(r["model"], r["seed"]): r for r in load_snapshot(out)}
    assert restored.keys() == original.keys()
    for key, record in original.items():
        back = restored[key]
        assert back["snapshot"] == str(out) and back["source"] == f"{out}#{key[0]}/seed_{key[1]}.json"
        assert {k: v for k, v in back.items() if k not in ("source", "snapshot")} == {
            k: v for k, v in record.items() if k not in ("source", "history", "gates_test")}
        assert protocol_hash(back) == protocol_hash(record)
    assert restored[("strong", 0)]["validation"] == extra["validation"]
    assert restored[("strong", 0)]["model_source"] == extra["model_source"]
    assert restored[("weak", 3)]["status"] == "failed"  # kept, and left out of tables like a run's
    finished = [r for r in restored.values() if r["status"] == "ok"]
    pd.testing.assert_frame_equal(leaderboard(finished), leaderboard([r for r in original.values() if r["status"] == "ok"]))


def test_a_damaged_snapshot_is_refused_naming_the_fix(tmp_path, capsys):
    from replication.snapshot import SnapshotError, load_snapshot

    runs = tmp_path / "runs"
    write_runs(runs)
    out = tmp_path / "census.json"
    snapshot_of(runs, out)
    snapshot = json.loads(out.read_text())
    del snapshot["records"][4]["test"]
    out.write_text(json.dumps(snapshot))
    with pytest.raises(SnapshotError, match=re.escape(f"run record {out}#strong/seed_1.json has no 'test' key")) as error:
        load_snapshot(out)
    assert f"python -m replication snapshot --runs {runs} --out {out}" in str(error.value)
    out.write_text("{")
    with pytest.raises(SnapshotError, match="is not valid JSON"):
        load_snapshot(out)
    assert main(["snapshot", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "new.json")]) == 2
    assert "run folder" in capsys.readouterr().err and not (tmp_path / "new.json").exists()


def test_a_stale_snapshot_is_an_error_naming_what_differs_and_the_command(tmp_path, capsys):
    from replication.snapshot import SnapshotError, check_snapshot

    runs = tmp_path / "runs"
    write_runs(runs)
    out = tmp_path / "census.json"
    snapshot_of(runs, out)
    check_snapshot(out)  # fresh: matches
    assert main(["snapshot", "--runs", str(runs), "--out", str(out), "--check"]) == 0
    before = out.read_text()
    write_json(runs / "strong" / "seed_1.json", fake_record("strong", 1, 0.99, 0.83))
    write_json(runs / "weak" / "seed_7.json", fake_record("weak", 7, 0.89, 0.80))
    (runs / "single_task" / "seed_2.json").unlink()
    with pytest.raises(SnapshotError) as error:
        check_snapshot(out)
    message = str(error.value)
    assert f"snapshot {out} is stale: it no longer matches the runs under {runs}" in message
    assert "weak seed 7 is in" in message and "single_task seed 2 is in the snapshot but not in" in message
    assert "strong seed 1 differs in test" in message
    assert f"`python -m replication snapshot --runs {runs} --out {out}`" in message
    assert main(["snapshot", "--runs", str(runs), "--out", str(out), "--check"]) == 2
    assert "is stale" in capsys.readouterr().err and out.read_text() == before  # --check writes nothing
    snapshot_of(runs, out)
    check_snapshot(out)  # regenerated: matches again


def test_compare_against_the_snapshot_ranks_as_against_the_runs_and_says_delong_is_skipped(cached, tmp_path, capsys):
    model_file = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "my_model.py")
    spec = f"{model_file}:MyModel"
    snapshot = tmp_path / "snapshot.json"
    snapshot_of(cached / "runs", snapshot)

    assert main(compare_argv(cached, spec, tmp_path / "with_runs")) == 0
    from_runs = capsys.readouterr().out
    argv = compare_argv(cached, spec, tmp_path / "with_snapshot")
    at = argv.index("--runs")
    argv[at:at + 2] = ["--snapshot", str(snapshot)]  # no run folders: only the snapshot
    assert main(argv) == 0
    from_snapshot = capsys.readouterr().out

    def read(name, file):
        return pd.read_csv(tmp_path / name / file, dtype={"unpaired_seeds": str, "paired_seeds": str})

    skipped = "DeLong per seed skipped: the cached runs come from the snapshot"
    assert skipped not in from_runs and skipped in from_snapshot and "holds no test predictions" in from_snapshot
    assert skipped in (tmp_path / "with_snapshot" / "summary.md").read_text()
    runs_cmp, snap_cmp = read("with_runs", "comparisons.csv"), read("with_snapshot", "comparisons.csv")
    assert (runs_cmp["delong_seeds"] == 2).all() and snap_cmp["delong_seeds"].isna().all()
    assert runs_cmp["delong_significant_seeds"].between(0, 2).all()
    delong = [c for c in runs_cmp.columns if c.startswith("delong_")]
    # Training is deterministic on the CPU: the same model and seeds give the same runs, so everything
    # but DeLong agrees (ranking, gains, intervals, tests).
    pd.testing.assert_frame_equal(runs_cmp.drop(columns=delong), snap_cmp.drop(columns=delong))
    timed = ["mean_train_seconds"]  # wall time, the one thing two trainings need not share
    pd.testing.assert_frame_equal(read("with_runs", "leaderboard_row.csv").drop(columns=timed),
                                  read("with_snapshot", "leaderboard_row.csv").drop(columns=timed))

    def comparison_lines(printed):
        return [re.sub(r"\| [0-2]/2 \| (yes|no) \|$", r"|  | \1 |", line) for line in printed.splitlines()
                if line.startswith("| mymodel |")]

    assert len(comparison_lines(from_runs)) == 4 and comparison_lines(from_runs) == comparison_lines(from_snapshot)

    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()  # the compared model's code, in its records
    for seed in (0, 1):
        record = json.loads((tmp_path / "with_snapshot" / "runs" / "mymodel" / f"seed_{seed}.json").read_text())
        assert record["model_source"] == {"file": str(model_file), "class": "MyModel", "sha256": digest}
    summary = (tmp_path / "with_snapshot" / "summary.md").read_text()
    assert f"class MyModel of {model_file} (SHA-256 `{digest}`)" in summary and f"Cached runs: {snapshot}." in summary


def test_compare_refuses_a_stale_snapshot_and_checks_the_snapshots_protocol(cached, tmp_path, capsys):
    model_file = shutil.copy(REPO / "examples" / "my_model.py", tmp_path / "my_model.py")
    spec = f"{model_file}:MyModel"
    runs = tmp_path / "runs"
    shutil.copytree(cached / "runs", runs, ignore=shutil.ignore_patterns("*.npz"))
    snapshot = tmp_path / "snapshot.json"
    snapshot_of(runs, snapshot)
    record = json.loads((runs / "single_task" / "seed_0.json").read_text())
    record["test"]["income"]["auc"] -= 0.01
    write_json(runs / "single_task" / "seed_0.json", record)

    argv = compare_argv(cached, spec, tmp_path / "out", "0-1", "--snapshot", str(snapshot))
    argv[argv.index("--runs") + 1] = str(runs)  # runs and snapshot both there: the snapshot must match
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"snapshot {snapshot} is stale" in err and "single_task seed 0 differs in test" in err
    assert f"python -m replication snapshot --runs {runs} --out {snapshot}" in err
    assert not (tmp_path / "out").exists()

    argv = ["compare", "--model", spec, "--data", str(cached / "data"), "--seeds", "0-1", "--snapshot", str(snapshot),
            "--out", str(tmp_path / "out"), *TINY, "--set", "train.max_epochs=3"]
    assert main(argv) == 2  # a snapshot's records pass the same protocol check as run records
    err = capsys.readouterr().err
    assert f"protocol {protocol_hash(record)} (shared_bottom, single_task): differs in train.max_epochs: 2 vs 3" in err
    assert not (tmp_path / "out").exists()


def test_compare_chooses_run_folders_then_the_snapshot_and_names_the_fix_when_neither_exists(tmp_path, monkeypatch):
    from replication.byom import DEFAULT_RUNS, references
    from replication.snapshot import DEFAULT_SNAPSHOT, SnapshotError

    monkeypatch.chdir(tmp_path)  # the defaults are relative to the working directory, like the CLI's
    with pytest.raises(ConfigError, match=re.escape(f"there is no snapshot {DEFAULT_SNAPSHOT}; restore the committed "
                                                    f"snapshot (`git checkout -- {DEFAULT_SNAPSHOT}`)")):
        references()
    with pytest.raises(SnapshotError, match="snapshot other.json does not exist"):
        references(snapshot="other.json")
    write_runs(DEFAULT_RUNS[0])
    snapshot_of(DEFAULT_RUNS[0], DEFAULT_SNAPSHOT)
    from_runs = references()  # run folders exist: read them, the snapshot checked against them
    assert from_runs.snapshot is None and from_runs.folders == [DEFAULT_RUNS[0]] and from_runs.skipped() == []
    from_snapshot = references(snapshot=DEFAULT_SNAPSHOT)  # asked for: read even where the runs exist
    assert from_snapshot.snapshot == DEFAULT_SNAPSHOT and from_snapshot.folders == []
    assert from_snapshot.skipped() == [f"DeLong per seed skipped: the cached runs come from the snapshot "
                                       f"{DEFAULT_SNAPSHOT}, which holds no test predictions (only per-seed metrics); "
                                       f"for it, compare against the run folders (`dvc repro`, then --runs)"]
    assert ({(r["model"], r["seed"], r["test"]["income"]["auc"]) for r in from_snapshot.records}
            == {(r["model"], r["seed"], r["test"]["income"]["auc"]) for r in from_runs.records})
    shutil.rmtree(DEFAULT_RUNS[0])
    assert references().snapshot == DEFAULT_SNAPSHOT  # a fresh clone: the run folders are absent
