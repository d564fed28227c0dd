"""Data sets as data (``replication/data/spec.py``, ``prepare.py``, ``tables.py``): census as a spec gives
the committed processed data byte for byte; a table of one's own, described only by a spec, is prepared
(CSV or Parquet, read in chunks), trained, aggregated and ranked on the leaderboard; and every bad spec
or file ends in one line through the command line's error boundary, with no output folder left.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from replication.cli import main
from replication.data import prepare as prepare_module
from replication.data.census import CENSUS_SPEC
from replication.data.download import CENSUS_FILES
from replication.data.prepare import Encoder, labels, prepare
from replication.data.processed import SPLITS, data_hash, load_processed
from replication.data.spec import SpecError, TaskColumn, load_spec
from replication.data.tables import CsvTable
from tests.conftest import load_arrays

pytestmark = pytest.mark.usefixtures("one_thread")

# The committed census data (data/processed/census_income_marital, DVC-tracked), made by `prepare census`
# before data specs existed: its data hash and the SHA-256 of its schema.json. A spec that changed the
# protocol, or the schema's bytes (which DVC hashes, so every train stage would rerun), changes these.
COMMITTED_CENSUS_DATA_HASH = "9357d6c3255d3e99b6a0ca852f25a47bd3b5842b7a06c633e4ab8385b65532e9"
COMMITTED_CENSUS_SCHEMA_SHA256 = "4254ff08c06c6bf46b7e0a969bd1f8240323373e9547f5af2281a1ec24c19de2"

ROWS = 400
SHOP_SPEC = {
    "name": "toy-shop",
    "source": "written by tests/test_data_spec.py",
    "obtain": "run the test again",
    "splits": {"train": {"file": "shop.csv"}, "validation": {"file": "shop.csv", "fraction": 0.2},
               "test": {"file": "shop.csv", "fraction": 0.2}},
    "split_seed": 7,
    "features": {"categorical": ["color", "size"], "numeric": ["price", "age"], "drop": ["user_id", "click", "buy", "spend"]},
    "tasks": {"click": {"column": "click", "type": "binary"}, "buy": {"column": "buy", "type": "binary"},
              "spend": {"column": "spend", "type": "regression", "definition": "money spent"}},
    "task_groups": {"click-buy": ["click", "buy"], "buy-click-spend": ["buy", "click", "spend"]},
}


def shop_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A shop's impressions: two categorical and two numeric features, clicks, buys and spend. Prices
    are quarters and ages whole, so CSV text and Parquet give the same float64 values."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], rows)
    price = rng.integers(0, 400, rows) / 4
    click = (rng.random(rows) < 0.2 + 0.5 * (color == "red")).astype(int)
    buy = click * (rng.random(rows) < 0.5 - price / 400).astype(int)
    return pd.DataFrame({"user_id": np.arange(rows), "color": color, "size": rng.choice(["S", "M", "L", "XL"], rows),
                         "price": price, "age": rng.integers(18, 80, rows).astype(float), "click": click, "buy": buy,
                         "spend": price * buy})


def write_spec(folder: Path, spec: dict, name: str = "shop.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A folder with shop.csv and its spec shop.yaml."""
    folder = tmp_path / "shop"
    folder.mkdir()
    shop_frame().to_csv(folder / "shop.csv", index=False)
    write_spec(folder, SHOP_SPEC)
    return folder


def refused(argv: list[str], capsys) -> str:
    """Run the CLI, expecting exit 2 and a one-line error as stderr's last line (after any progress
    line); returns that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    return last


# --------------------------------------------------------------------------------------------------
# Census: one spec, the protocol unchanged


def test_census_through_its_spec_is_the_committed_data(census_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "census"
    assert main(["prepare", "--spec", str(CENSUS_SPEC), "--raw", str(census_raw), "--out", str(out)]) == 0
    schema = json.loads((out / "schema.json").read_text(encoding="utf-8"))
    assert schema["data_hash"] == data_hash(out) == COMMITTED_CENSUS_DATA_HASH
    assert hashlib.sha256((out / "schema.json").read_bytes()).hexdigest() == COMMITTED_CENSUS_SCHEMA_SHA256
    assert schema["task_group"] == "income-marital" and schema["main_task"] == "income"


def test_census_spec_declares_the_protocol() -> None:
    spec = load_spec(CENSUS_SPEC)
    assert spec.loader == "census" and len(spec.columns) == 42
    assert (len(spec.features.categorical), len(spec.features.numeric)) == (31, 7)
    assert spec.features.drop == ["instance_weight", "education", "marital_stat", "income"]
    assert {f: facts.rows for f, facts in spec.files.items()} == {"census-income.data": 199_523,
                                                                   "census-income.test": 99_762}
    assert {f: facts.sha256 for f, facts in spec.files.items()} == CENSUS_FILES  # what `download` verifies
    assert spec.splits["validation"].fraction == 0.5 and spec.splits["test"].fraction is None
    assert spec.task_groups == {"income-marital": ["income", "marital"], "education-marital": ["education", "marital"],
                                "income-marital-education": ["income", "marital", "education"]}
    assert spec.tasks["education"].describe().startswith("education is an associate degree or higher: Associates")


# --------------------------------------------------------------------------------------------------
# A table of one's own


def test_a_csv_table_is_prepared_by_its_spec(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    assert main(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(out)]) == 0  # --raw: the spec's folder
    schema = json.loads((out / "schema.json").read_text(encoding="utf-8"))
    frame = shop_frame()
    parts = np.full(ROWS, 0)
    order = np.random.default_rng(7).permutation(ROWS)  # the seeded split, written out: validation, then test
    parts[order[:80]], parts[order[80:160]] = 1, 2
    a = load_arrays(out)
    assert {s: schema["splits"][s]["rows"] for s in SPLITS} == {"train": 240, "validation": 80, "test": 80}
    assert schema["dataset"] == "toy-shop" and schema["task_group"] == "click-buy" and schema["split_seed"] == 7
    assert schema["features"]["dropped"] == ["user_id", "click", "buy", "spend"]
    assert schema["features"]["categorical"] == [{"name": "color", "cardinality": 4}, {"name": "size", "cardinality": 5}]
    assert schema["tasks"] == [{"name": "click", "type": "binary", "definition": "click (0 or 1)"},
                               {"name": "buy", "type": "binary", "definition": "buy (0 or 1)"}]
    assert schema["raw_sha256"] == {"shop.csv": hashlib.sha256((shop / "shop.csv").read_bytes()).hexdigest()}
    for k, split in enumerate(SPLITS):
        rows = frame[parts == k]  # file order within each split
        np.testing.assert_array_equal(a[split]["y"], rows[["click", "buy"]].to_numpy(np.float32))
        # Codes: sorted training vocabulary, index + 1.
        np.testing.assert_array_equal(a[split]["x_cat"][:, 0], rows["color"].map({"blue": 1, "green": 2, "red": 3}))
        train = frame[parts == 0]["price"]
        np.testing.assert_allclose(a[split]["x_num"][:, 0], (rows["price"] - train.mean()) / train.std(ddof=0),
                                   rtol=1e-6, atol=1e-6)
    assert schema["label_correlation_train"] == pytest.approx(np.corrcoef(frame[parts == 0][["click", "buy"]].T)[0, 1])
    assert load_processed(out).schema == schema


def test_chunked_reading_gives_the_one_chunk_result(shop: Path, tmp_path: Path, monkeypatch) -> None:
    """Statistics combined over chunks of 64 rows equal those of one chunk (to float rounding); the
    codes and labels are identical, and every chunk but the last has exactly 64 rows."""
    spec = load_spec(shop / "shop.yaml")
    prepare(spec, None, tmp_path / "one")
    monkeypatch.setattr(prepare_module, "CHUNK_ROWS", 64)
    sizes = [len(c) for c in CsvTable(shop / "shop.csv").chunks(["color", "price"], ["price"], 64)]
    assert sizes == [64] * 6 + [16]
    prepare(spec, None, tmp_path / "many")
    one, many = load_arrays(tmp_path / "one"), load_arrays(tmp_path / "many")
    for split in SPLITS:
        np.testing.assert_array_equal(one[split]["x_cat"], many[split]["x_cat"])
        np.testing.assert_array_equal(one[split]["y"], many[split]["y"])
        np.testing.assert_allclose(one[split]["x_num"], many[split]["x_num"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(many["train"]["x_num"].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(many["train"]["x_num"].std(axis=0), 1, atol=1e-5)


def test_parquet_gives_the_same_data_as_csv(shop: Path, tmp_path: Path) -> None:
    shop_frame().to_parquet(shop / "shop.parquet", index=False, row_group_size=50)  # batches of 50 re-cut
    spec = copy.deepcopy(SHOP_SPEC)
    for split in spec["splits"].values():
        split["file"] = "shop.parquet"
    from_csv = prepare(load_spec(shop / "shop.yaml"), None, tmp_path / "csv")
    from_parquet = prepare(load_spec(write_spec(shop, spec, "parquet.yaml")), None, tmp_path / "parquet")
    assert from_parquet["data_hash"] == from_csv["data_hash"]
    assert from_parquet["raw_sha256"].keys() == {"shop.parquet"}


def test_three_tasks_and_a_regression_task(shop: Path, tmp_path: Path) -> None:
    schema = prepare(load_spec(shop / "shop.yaml"), None, tmp_path / "three", task_group="buy-click-spend")
    assert [t["name"] for t in schema["tasks"]] == ["buy", "click", "spend"] and schema["main_task"] == "buy"
    assert schema["tasks"][2] == {"name": "spend", "type": "regression", "definition": "money spent"}
    correlation = np.array(schema["label_correlation_train"])
    assert correlation.shape == (3, 3) and np.allclose(np.diag(correlation), 1)


def test_encoder_maps_unseen_values_to_zero_and_derives_labels() -> None:
    train = pd.DataFrame({"c": ["b", "a", "b"], "x": [1.0, 2.0, 3.0], "label": ["yes", "no", "maybe"]})
    encoder = Encoder.fit([train], ["c"], ["x"], "none")
    x_cat, x_num = encoder.transform(pd.DataFrame({"c": ["a", "z", "b"], "x": [5.0, 6.0, 7.0]}))
    assert x_cat[:, 0].tolist() == [1, 0, 2]
    assert x_num[:, 0].tolist() == [5.0, 6.0, 7.0]  # "none": used as read
    tasks = [("one", TaskColumn("label", "binary", positive="yes")), ("any", TaskColumn("label", "binary", ["yes", "maybe"]))]
    np.testing.assert_array_equal(labels(train, tasks), [[1, 1], [0, 0], [0, 1]])


# --------------------------------------------------------------------------------------------------
# Done when: a data set described only by a spec trains, aggregates and joins the leaderboard


def test_a_spec_data_set_trains_aggregates_and_joins_the_leaderboard(shop: Path, tmp_path: Path) -> None:
    data, runs = tmp_path / "data", tmp_path / "runs"
    assert main(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(data)]) == 0
    for model in ("single_task", "mmoe"):
        assert main(["train", "--data", str(data), "--model", model, "--seeds", "0", "--out", str(runs / model),
                     "--checkpoints", str(tmp_path / "ck"), "--set", "train.max_epochs=2", "--set", "train.batch_size=64",
                     "--set", "train.seed_workers=1", "--set", "train.device=cpu"]) == 0
    assert main(["aggregate", "--runs", str(runs), "--out", str(tmp_path / "table")]) == 0
    assert main(["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "leaderboard")]) == 0
    record = json.loads((runs / "mmoe" / "seed_0.json").read_text(encoding="utf-8"))
    assert (record["dataset"], record["task_group"]) == ("toy-shop", "click-buy")
    assert record["data_hash"] == json.loads((data / "schema.json").read_text(encoding="utf-8"))["data_hash"]
    table = pd.read_csv(tmp_path / "table.csv")
    assert sorted(zip(table["model"], table["task"])) == [("mmoe", "buy"), ("mmoe", "click"),
                                                          ("single_task", "buy"), ("single_task", "click")]
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert set(board["dataset"]) == {"toy-shop"} and sorted(board["model"]) == ["mmoe", "single_task"]
    assert board["click_auc_mean"].between(0, 1).all()
    assert "toy-shop, task group click-buy" in (tmp_path / "leaderboard.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Errors: one line through the CLI, no output folder


def spec_with(change) -> dict:
    spec = copy.deepcopy(SHOP_SPEC)
    change(spec)
    return spec


MALFORMED = [
    ("unknown key", lambda s: s.update(splitz=1), "unknown key(s) splitz; allowed keys: name, source"),
    ("unknown nested key", lambda s: s["tasks"]["click"].update(colum="click"),
     "unknown key(s) tasks.click.colum; allowed keys: column, type, positive, definition"),
    ("missing key", lambda s: s.pop("obtain"), "missing key(s) obtain; required keys: name, source, obtain"),
    ("missing nested key", lambda s: s["tasks"]["buy"].pop("type"), "missing key(s) tasks.buy.type"),
    ("wrong type", lambda s: s["features"].update(numeric_buckets="four"),
     "features.numeric_buckets = 'four': expected int, got str"),
    ("wrong list item", lambda s: s["features"].update(categorical=["color", 101]),
     "features.categorical[1] = 101: expected str, got int"),
    ("wrong task type", lambda s: s["tasks"]["click"].update(type="binery"),
     "tasks.click.type = 'binery': allowed values are 'binary', 'regression'"),
    ("label as a feature", lambda s: s["features"]["numeric"].append(s["features"]["drop"].pop(1)),
     "tasks.click.column = 'click' is also a feature; a label must never be an input"),
    ("a column twice", lambda s: s["features"]["numeric"].append("color"), "column(s) 'color' appear more than once"),
    ("a split missing", lambda s: s["splits"].pop("test"), "it must name exactly train, validation, test"),
    ("fractions sum to 1", lambda s: s["splits"]["validation"].update(fraction=0.8), "sum to 1; they must leave rows"),
    ("unknown task in a group", lambda s: s["task_groups"].update(solo=["click", "cart"]),
     "task_groups.solo names unknown task(s) 'cart'"),
]


@pytest.mark.fault
@pytest.mark.parametrize("case, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_spec_names_the_key_and_the_file(case, change, message, shop: Path, tmp_path: Path, capsys) -> None:
    path = write_spec(shop, spec_with(change), "bad.yaml")
    err = refused(["prepare", "--spec", str(path), "--out", str(tmp_path / "out")], capsys)
    assert f"data spec {path}: " in err and message in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SpecError):
        load_spec(path)


@pytest.mark.fault
def test_a_spec_that_is_not_yaml_names_the_line(shop: Path, tmp_path: Path, capsys) -> None:
    (shop / "bad.yaml").write_text("name: toy\nsplits: [unclosed\n", encoding="utf-8")
    err = refused(["prepare", "--spec", str(shop / "bad.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert f"{shop / 'bad.yaml'} is not valid YAML at line" in err


def broken_table(shop: Path, column: str, rows: list[int] | None = None, value=None) -> None:
    """shop.csv with ``column`` removed (no ``rows``), or set to ``value`` in ``rows``."""
    frame = shop_frame()
    if rows is None:
        frame = frame.drop(columns=[column])
    else:
        frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = value
    frame.to_csv(shop / "shop.csv", index=False)


def no_output(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no staging folder left


@pytest.mark.fault
def test_a_missing_column_is_named_with_the_columns_there_are(shop: Path, tmp_path: Path, capsys) -> None:
    broken_table(shop, "price")
    err = refused(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert f"{shop / 'shop.csv'} has no column 'price' (features.numeric)" in err
    assert "its columns are: user_id, color, size, age, click, buy, spend" in err
    no_output(tmp_path)


@pytest.mark.fault
def test_a_column_without_a_role_is_refused(shop: Path, tmp_path: Path, capsys) -> None:
    frame = shop_frame()
    frame.insert(2, "leak", frame["buy"])
    frame.to_csv(shop / "shop.csv", index=False)
    err = refused(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert "has column(s) 'leak' that" in err and "features.drop" in err
    no_output(tmp_path)


@pytest.mark.fault
def test_a_binary_label_outside_0_1_names_the_task_value_and_rows(shop: Path, tmp_path: Path, capsys) -> None:
    broken_table(shop, "buy", [5, 9, 300], 2)
    err = refused(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert "task 'buy' is binary, but column 'buy' of" in err
    assert "holds 2 (data row 6) and 3 row(s) in all outside {0, 1}" in err and "tasks.buy.positive" in err
    no_output(tmp_path)


@pytest.mark.fault
def test_a_value_that_is_not_a_number_names_its_row(shop: Path, tmp_path: Path, capsys) -> None:
    broken_table(shop, "age", [17], "old")
    err = refused(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert f"{shop / 'shop.csv'}, data row 18: column 'age' is 'old', not a number" in err
    no_output(tmp_path)


@pytest.mark.fault
@pytest.mark.parametrize("facts, message", [
    ({"rows": 401}, "has 400 rows, expected 401 (files.shop.csv.rows in"),
    ({"sha256": "0" * 64}, "expected " + "0" * 64 + " (files.shop.csv.sha256 in"),
])
def test_a_wrong_row_count_or_hash_says_expected_got_and_the_fix(facts, message, shop: Path, tmp_path: Path,
                                                                  capsys) -> None:
    spec = write_spec(shop, spec_with(lambda s: s.update(files={"shop.csv": facts})), "pinned.yaml")
    err = refused(["prepare", "--spec", str(spec), "--out", str(tmp_path / "out")], capsys)
    assert message in err and "it is not the published file" in err and err.endswith("run the test again")
    if "sha256" in facts:
        assert f"has SHA-256 {hashlib.sha256((shop / 'shop.csv').read_bytes()).hexdigest()}" in err
    no_output(tmp_path)


@pytest.mark.fault
def test_a_failure_leaves_an_existing_output_as_it_was(shop: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken_table(shop, "click", [3], 7)
    refused(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(out)], capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.fault
def test_prepare_refuses_to_replace_a_folder_that_is_not_processed_data(shop: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("precious", encoding="utf-8")
    err = refused(["prepare", "--spec", str(shop / "shop.yaml"), "--out", str(tmp_path / "notes")], capsys)
    assert "is not a processed data set (no schema.json)" in err
    assert (tmp_path / "notes" / "thesis.tex").read_text(encoding="utf-8") == "precious"


@pytest.mark.fault
def test_prepare_takes_a_built_in_name_or_a_spec_not_both(shop: Path, tmp_path: Path, capsys) -> None:
    err = refused(["prepare", "census", "--spec", str(shop / "shop.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert "one of the two" in err
