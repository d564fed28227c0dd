"""The public MTL recommendation data sets as specs (``replication/data/specs/aliexpress.yaml``,
``ali_ccp.yaml``), on real rows: the samples in ``../shared/datasets/mtl-samples`` (torch-rechub's example
data, copied unchanged; its README). Their loaders are checked against the sample files read
independently here, and each data set's pipeline (``pipelines/<name>/dvc.yaml``) runs end to end on
them: every stage's command, as written in the pipeline, with tiny settings (one seed, one epoch).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from replication.cli import main
from replication.data.prepare import prepare
from replication.data.processed import SPLITS, load_processed
from replication.data.spec import builtin_specs, load_spec
from tests.conftest import REPO, load_arrays
from tests.pipelines import run_stages

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLES = REPO.parent / "shared" / "datasets" / "mtl-samples"
# The samples' SHA-256 as their README lists them: the tests run on those rows and no others.
SAMPLE_SHA256 = {
    "aliexpress/aliexpress_train_sample.csv": "9a602d2bd6012b23898437f60977135b65e75c3414bf19cac0d70408b12035ef",
    "aliexpress/aliexpress_test_sample.csv": "c264673dc08e68d1c6153b48c9039a3ea4d3ff3106b071550db34e311e25d529",
    "ali-ccp/ali_ccp_train_sample.csv": "1c1d125bcdfca70c8f5ed24f6221acadab3e19b70e0b06b3eb3adb2af7a0f9b5",
    "ali-ccp/ali_ccp_val_sample.csv": "1236e1504b76bf7ceb48dbe3d999ae8b49f61fcda2d684578320fd9fc7821104",
    "ali-ccp/ali_ccp_test_sample.csv": "9764a9b8e53b25f85c00e08a89f65ecfadab100cb0834161bd7ef671b7702a09",
}
# Sample file -> the file name of the full data's layout, which the spec reads.
LAYOUT = {
    "aliexpress": {"aliexpress/aliexpress_train_sample.csv": "train.csv", "aliexpress/aliexpress_test_sample.csv": "test.csv"},
    "ali_ccp": {"ali-ccp/ali_ccp_train_sample.csv": "ali_ccp_train.csv", "ali-ccp/ali_ccp_val_sample.csv": "ali_ccp_val.csv",
                "ali-ccp/ali_ccp_test_sample.csv": "ali_ccp_test.csv"},
}


def raw_folder(name: str, folder: Path) -> Path:
    """The samples of data set ``name`` under the file names of its full layout."""
    folder.mkdir(parents=True, exist_ok=True)
    for sample, target in LAYOUT[name].items():
        shutil.copyfile(SAMPLES / sample, folder / target)
    return folder


def test_the_samples_are_the_published_rows() -> None:
    for sample, digest in SAMPLE_SHA256.items():
        assert hashlib.sha256((SAMPLES / sample).read_bytes()).hexdigest() == digest, sample


# The AliExpress sample has 2 conversions in its 100 training rows; split seed 5 puts one of them among
# the 10 held out for validation (seed 0, the default, puts none there, which prepare refuses: below).
SAMPLE_SPLIT_SEED = 5


def test_aliexpress_loader_on_the_sample_rows(tmp_path: Path) -> None:
    raw = raw_folder("aliexpress", tmp_path / "raw")
    schema = prepare(load_spec(builtin_specs()["aliexpress"]), raw, tmp_path / "out", name="aliexpress-sample",
                     split_seed=SAMPLE_SPLIT_SEED)
    train_file, test_file = pd.read_csv(raw / "train.csv"), pd.read_csv(raw / "test.csv")
    assert (len(train_file), len(test_file)) == (100, 20)
    # Validation: a seeded 10% of train.csv, written out here.
    held_out = np.sort(np.random.default_rng(SAMPLE_SPLIT_SEED).permutation(100)[:10])
    train = train_file.drop(index=held_out)
    parts = {"train": train, "validation": train_file.iloc[held_out], "test": test_file}
    assert {s: schema["splits"][s]["rows"] for s in SPLITS} == {"train": 90, "validation": 10, "test": 20}
    assert schema["dataset"] == "aliexpress-sample" and schema["task_group"] == "conversion-click"
    assert [t["name"] for t in schema["tasks"]] == ["conversion", "click"] and schema["main_task"] == "conversion"
    categorical = [f"categorical_{i}" for i in range(1, 17)]
    assert [f["name"] for f in schema["features"]["categorical"]] == categorical
    assert [f["cardinality"] for f in schema["features"]["categorical"]] == [train[c].nunique() + 1 for c in categorical]
    assert schema["features"]["numeric"] == [f"numerical_{i}" for i in range(1, 64)]
    assert schema["features"]["dropped"] == ["search_id", "click", "conversion"]
    a = load_arrays(tmp_path / "out")
    for split, rows in parts.items():
        np.testing.assert_array_equal(a[split]["y"], rows[["conversion", "click"]].to_numpy(np.float32))
        assert schema["splits"][split]["label_rate"]["click"] == pytest.approx(rows["click"].mean())
        # Codes follow the sorted training values as text; unseen values get 0.
        vocab = sorted(train["categorical_1"].astype(str).unique())
        codes = [vocab.index(v) + 1 if v in vocab else 0 for v in rows["categorical_1"].astype(str)]
        np.testing.assert_array_equal(a[split]["x_cat"][:, 0], codes)
        column = train["numerical_24"]
        std = column.std(ddof=0) or 1.0
        np.testing.assert_allclose(a[split]["x_num"][:, 23], (rows["numerical_24"] - column.mean()) / std, rtol=1e-5,
                                   atol=1e-5)
    assert schema["splits"]["train"]["label_rate"] == pytest.approx({"click": 54 / 90, "conversion": 1 / 90})
    assert schema["splits"]["validation"]["label_rate"] == pytest.approx({"click": 6 / 10, "conversion": 1 / 10})
    assert load_processed(tmp_path / "out").tasks[0].type == "binary"


@pytest.mark.fault
def test_a_split_without_both_classes_of_a_binary_task_is_refused(tmp_path: Path, capsys) -> None:
    raw = raw_folder("aliexpress", tmp_path / "raw")
    assert main(["prepare", "aliexpress", "--raw", str(raw), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: task 'conversion' has only label 0 in the validation split (10 rows): its AUC is "
                          "undefined") and "--split-seed" in err
    assert not (tmp_path / "out").exists()


def test_ali_ccp_loader_on_the_sample_rows(tmp_path: Path) -> None:
    raw = raw_folder("ali_ccp", tmp_path / "raw")
    schema = prepare(load_spec(builtin_specs()["ali_ccp"]), raw, tmp_path / "out")
    files = {split: pd.read_csv(raw / f"ali_ccp_{name}.csv", dtype=str)
             for split, name in (("train", "train"), ("validation", "val"), ("test", "test"))}
    # The samples' README lists 99 / 49 / 49 rows; the files hold 100 / 50 / 50 (their last line has
    # no line break, which a line count misses).
    assert {s: schema["splits"][s]["rows"] for s in SPLITS} == {"train": 100, "validation": 50, "test": 50}
    assert {s: len(f) for s, f in files.items()} == {"train": 100, "validation": 50, "test": 50}
    assert schema["dataset"] == "ali-ccp" and [t["name"] for t in schema["tasks"]] == ["purchase", "click"]
    sparse = ["101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216", "508",
              "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14"]
    assert [f["name"] for f in schema["features"]["categorical"]] == sparse
    assert [f["cardinality"] for f in schema["features"]["categorical"]] == [files["train"][c].nunique() + 1 for c in sparse]
    assert schema["features"]["numeric"] == ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"]
    a = load_arrays(tmp_path / "out")
    for split, rows in files.items():
        y = rows[["purchase", "click"]].astype(float).to_numpy(np.float32)
        np.testing.assert_array_equal(a[split]["y"], y)
        assert not ((y[:, 0] == 1) & (y[:, 1] == 0)).any()  # a purchase is always clicked (the converter drops the rest)
    assert schema["splits"]["train"]["label_rate"]["click"] == pytest.approx(files["train"]["click"].astype(int).mean())
    d508 = files["train"]["D508"].astype(float)
    np.testing.assert_allclose(a["test"]["x_num"][:, 4], (files["test"]["D508"].astype(float) - d508.mean()) / d508.std(ddof=0),
                               rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# The pipelines, end to end


@pytest.mark.parametrize("name", ["aliexpress", "ali_ccp"])
def test_the_pipeline_runs_end_to_end_on_the_samples(name: str, tmp_path: Path, monkeypatch) -> None:
    """Every stage of pipelines/NAME/dvc.yaml, its command as written there, run in a scratch copy of the
    repository's layout (the code linked in), on the samples: one seed, one epoch, the default models."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["seeds"] = "0"
    params["train"].update(max_epochs=1, seed_workers=1, num_threads=1, device="cpu")
    params[name]["raw"] = "raw"
    params[name]["name"] = {"aliexpress": "aliexpress-NL", "ali_ccp": "ali-ccp"}[name]
    if name == "aliexpress":
        params[name]["split_seed"] = SAMPLE_SPLIT_SEED
    raw_folder(name, tmp_path / "raw")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    for code in ("replication", "models"):
        (tmp_path / code).symlink_to(REPO / code)
    monkeypatch.chdir(tmp_path)
    pipeline = REPO / "pipelines" / name / "dvc.yaml"
    assert yaml.safe_load(pipeline.read_text(encoding="utf-8"))["vars"] == ["../../params.yaml"]
    ran = run_stages(pipeline, params)
    assert ran == ["prepare", *(f"train@{m}" for m in params["train_models"]), "aggregate", "leaderboard"]
    board = pd.read_csv(f"results/leaderboard_{name}.csv")
    assert sorted(board["model"]) == sorted(params["train_models"])
    assert set(board["n_seeds"]) == {1}
    dataset = "aliexpress-NL" if name == "aliexpress" else "ali-ccp"
    assert set(board["dataset"]) == {dataset}
    record = json.loads(Path(f"results/runs/{name}/ple/seed_0.json").read_text(encoding="utf-8"))
    assert record["epochs_run"] == 1 and record["dataset"] == dataset
