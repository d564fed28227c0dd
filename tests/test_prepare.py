"""Tests for ``replication.data.census``: the processed Census-Income arrays and schema built from the
real mirror (MMoE paper's protocol), their determinism, and prepare's errors on bad raw files.

The real data is downloaded from the local mirror and prepared once per task group by module-scoped
fixtures; error cases use small temporary files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replication.data import census
from replication.data.census import COLUMNS, NUMERIC, PrepareError, prepare_census, read_raw
from replication.data.prepare import Encoder, assign_rows
from replication.data.download import download_census
from replication.data.processed import SPLITS, data_hash, load_processed
from tests.conftest import MIRROR, load_arrays

DATA, TEST = "census-income.data", "census-income.test"
# Written out here, independently of the package, so a wrong constant there is caught.
OFFICIAL = {
    DATA: "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86",
    TEST: "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c",
}
ROWS = {"train": 199_523, "validation": 49_881, "test": 49_881}
N_TEST_FILE = 99_762
DROPPED = {"education", "marital_stat", "income", "instance_weight"}
# README of the mirror: income "50000+." 6.21% of train, "Never married" 43.35% of train.
README_TRAIN_RATES = {"income": 0.0621, "marital": 0.4335}


def split_validation_test(n_rows: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The MMoE paper's 1:1 split of the test file as data/README.md states it, written out here:
    (validation rows, test rows) of ``numpy.random.default_rng(split_seed)``'s permutation, each sorted."""
    order = np.random.default_rng(split_seed).permutation(n_rows)
    return np.sort(order[: n_rows // 2]), np.sort(order[n_rows // 2:])


def raw_test_column(raw_dir: Path, column: str) -> np.ndarray:
    """One column of the raw test file, read with plain string splitting (independent of pandas)."""
    k = COLUMNS.index(column)
    with open(raw_dir / TEST, encoding="utf-8") as handle:
        return np.array([line.split(",")[k].strip() for line in handle if line.strip()])


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert MIRROR.is_dir(), f"the shared data mirror is missing: {MIRROR}"
    out = tmp_path_factory.mktemp("census_raw")
    download_census(out, mirror=str(MIRROR), progress=False)
    return out


@pytest.fixture(scope="module")
def prepared(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("income_marital_seed0")
    schema = prepare_census(raw_dir, out, "income-marital", 0)
    return out, schema


@pytest.fixture(scope="module")
def arrays(prepared: tuple[Path, dict]) -> dict[str, dict[str, np.ndarray]]:
    return load_arrays(prepared[0])


@pytest.fixture(scope="module")
def education_seed1(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("education_marital_seed1")
    return out, prepare_census(raw_dir, out, "education-marital", 1)


# --------------------------------------------------------------------------------------------------
# The processed income-marital data


def test_output_files_and_schema_json(prepared: tuple[Path, dict]) -> None:
    out, schema = prepared
    assert sorted(p.name for p in out.iterdir()) == ["schema.json", "test.npz", "train.npz", "validation.npz"]
    assert json.loads((out / "schema.json").read_text(encoding="utf-8")) == schema
    assert schema["dataset"] == "census-income-kdd"
    assert schema["task_group"] == "income-marital"
    assert schema["split_seed"] == 0
    assert schema["main_task"] == "income"
    assert [(t["name"], t["type"]) for t in schema["tasks"]] == [("income", "binary"), ("marital", "binary")]
    assert schema["data_hash"] == data_hash(out)


def test_split_sizes_agree_with_schema(prepared: tuple[Path, dict], arrays) -> None:
    _, schema = prepared
    n_cat, n_num = len(schema["features"]["categorical"]), len(schema["features"]["numeric"])
    for split, rows in ROWS.items():
        a = arrays[split]
        assert schema["splits"][split]["rows"] == rows
        assert a["x_cat"].shape == (rows, n_cat), split
        assert a["x_num"].shape == (rows, n_num), split
        assert a["y"].shape == (rows, 2), split
        assert a["x_cat"].dtype == np.int64
        assert a["x_num"].dtype == np.float32
        assert a["y"].dtype == np.float32
        assert np.isfinite(a["x_num"]).all()
        assert set(np.unique(a["y"])) == {0.0, 1.0}  # census has no missing label


def test_feature_names(prepared: tuple[Path, dict]) -> None:
    features = prepared[1]["features"]
    categorical = [f["name"] for f in features["categorical"]]
    numeric = features["numeric"]
    assert len(categorical) == 31
    assert len(numeric) == 7
    assert set(numeric) == set(NUMERIC)
    assert "age" in numeric and "weeks_worked_in_year" in numeric
    assert "sex" in categorical and "class_of_worker" in categorical and "year" in categorical
    assert not (set(categorical) & set(numeric))
    assert not ((set(categorical) | set(numeric)) & DROPPED)
    assert set(categorical) | set(numeric) | DROPPED == set(COLUMNS)
    assert set(features["dropped"]) == DROPPED
    # Categorical features are in file order.
    assert categorical == [c for c in COLUMNS if c in set(categorical)]


def test_categorical_codes_in_range_and_zero_only_for_unseen(prepared, arrays) -> None:
    cards = np.array([f["cardinality"] for f in prepared[1]["features"]["categorical"]])
    assert (cards >= 2).all()
    for split in SPLITS:
        x_cat = arrays[split]["x_cat"]
        assert (x_cat >= 0).all(), split
        assert (x_cat < cards).all(), split
        assert prepared[1]["splits"][split]["unseen_categorical_values"] == int((x_cat == 0).sum())
    train = arrays["train"]["x_cat"]
    assert (train >= 1).all()
    # Every code of the vocabulary (1 .. cardinality-1) occurs in training.
    assert [len(np.unique(train[:, j])) for j in range(train.shape[1])] == list(cards - 1)


def test_sex_is_encoded_in_sorted_vocabulary_order(prepared, arrays, raw_dir: Path) -> None:
    names = [f["name"] for f in prepared[1]["features"]["categorical"]]
    j = names.index("sex")
    assert prepared[1]["features"]["categorical"][j]["cardinality"] == 3
    val_idx, _ = split_validation_test(N_TEST_FILE, 0)
    sex = raw_test_column(raw_dir, "sex")[val_idx]
    expected = np.where(sex == "Female", 1, np.where(sex == "Male", 2, 0))
    np.testing.assert_array_equal(arrays["validation"]["x_cat"][:, j], expected)


def test_numeric_train_columns_are_standardised(arrays) -> None:
    x_num = arrays["train"]["x_num"].astype(np.float64)
    np.testing.assert_allclose(x_num.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(x_num.std(axis=0), 1.0, atol=1e-3)


def test_age_is_log1p_standardised_with_training_statistics(prepared, arrays, raw_dir: Path) -> None:
    """Validation ages are scaled with the *training* mean and std, not their own."""
    numeric = prepared[1]["features"]["numeric"]
    k = numeric.index("age")
    with open(raw_dir / DATA, encoding="utf-8") as handle:
        train_age = np.log1p(np.array([float(line.split(",")[0]) for line in handle if line.strip()]))
    val_idx, _ = split_validation_test(N_TEST_FILE, 0)
    val_age = np.log1p(raw_test_column(raw_dir, "age").astype(float)[val_idx])
    expected = (val_age - train_age.mean()) / train_age.std()
    np.testing.assert_allclose(arrays["validation"]["x_num"][:, k], expected, rtol=1e-5, atol=1e-5)


def test_label_rates_match_the_mirror_readme(prepared, arrays) -> None:
    schema = prepared[1]
    y = arrays["train"]["y"]
    for k, task in enumerate(("income", "marital")):
        rate = float(y[:, k].mean())
        assert rate == pytest.approx(README_TRAIN_RATES[task], abs=1e-3), task
        assert schema["splits"]["train"]["label_rate"][task] == pytest.approx(rate, abs=1e-7)
        for split in ("validation", "test"):
            assert schema["splits"][split]["label_rate"][task] == pytest.approx(
                float(arrays[split]["y"][:, k].mean()), abs=1e-7)
    assert -1 < schema["label_correlation_train"] < 0  # never-married people earn less


def test_raw_hashes_are_the_official_ones(prepared) -> None:
    assert prepared[1]["raw_sha256"] == OFFICIAL


def test_validation_and_test_labels_come_from_the_split_rows_of_the_test_file(arrays, raw_dir: Path) -> None:
    income = raw_test_column(raw_dir, "income")
    marital = raw_test_column(raw_dir, "marital_stat")
    assert len(income) == N_TEST_FILE
    assert set(income) == {"- 50000.", "50000+."}
    val_idx, test_idx = split_validation_test(N_TEST_FILE, 0)
    for split, idx in (("validation", val_idx), ("test", test_idx)):
        y = arrays[split]["y"]
        np.testing.assert_array_equal(y[:, 0], (income[idx] == "50000+.").astype(np.float32))
        np.testing.assert_array_equal(y[:, 1], (marital[idx] == "Never married").astype(np.float32))


def test_load_processed_round_trip(prepared, arrays) -> None:
    data = load_processed(prepared[0])
    assert data.schema == prepared[1]
    assert [t.name for t in data.tasks] == ["income", "marital"]
    for split in SPLITS:
        s = data.splits[split]
        assert s.rows == ROWS[split]
        np.testing.assert_array_equal(s.x_cat.numpy(), arrays[split]["x_cat"])
        np.testing.assert_array_equal(s.x_num.numpy(), arrays[split]["x_num"])
        np.testing.assert_array_equal(s.y_numpy, arrays[split]["y"])


# --------------------------------------------------------------------------------------------------
# The validation / test split


def test_assign_rows_is_the_documented_census_split() -> None:
    """prepare's seeded split with fractions (0.5, rest) is the 1:1 split data/README.md describes."""
    for n, seed in ((N_TEST_FILE, 0), (N_TEST_FILE, 1), (7, 3)):
        parts = assign_rows(n, [0.5, None], seed)
        val, test = split_validation_test(n, seed)
        np.testing.assert_array_equal(np.flatnonzero(parts == 0), val)
        np.testing.assert_array_equal(np.flatnonzero(parts == 1), test)
    assert (assign_rows(5, [None], 0) == 0).all()  # one split of a file takes every row, no permutation


def test_split_validation_test_is_a_partition() -> None:
    parts = assign_rows(N_TEST_FILE, [0.5, None], 0)
    assert (parts == 0).sum() == (parts == 1).sum() == 49_881
    assert set(np.unique(parts)) == {0, 1}


def test_split_validation_test_depends_only_on_the_seed() -> None:
    a = assign_rows(N_TEST_FILE, [0.5, None], 0)
    np.testing.assert_array_equal(a, assign_rows(N_TEST_FILE, [0.5, None], 0))
    assert not np.array_equal(a, assign_rows(N_TEST_FILE, [0.5, None], 1))
    # A random split, not a block: both halves span the whole file.
    val = np.flatnonzero(a == 0)
    assert val[0] < 100 and val[-1] > N_TEST_FILE - 100


def test_split_of_an_odd_count() -> None:
    parts = assign_rows(7, [0.5, None], 3)
    assert (parts == 0).sum() == 3 and (parts == 1).sum() == 4


def test_fractions_take_their_shares_in_turn_and_the_rest_is_left() -> None:
    parts = assign_rows(1000, [None, 0.1, 0.25], 5)
    assert [(parts == k).sum() for k in range(3)] == [650, 100, 250]
    order = np.random.default_rng(5).permutation(1000)
    np.testing.assert_array_equal(np.flatnonzero(parts == 1), np.sort(order[:100]))
    np.testing.assert_array_equal(np.flatnonzero(parts == 2), np.sort(order[100:350]))


# --------------------------------------------------------------------------------------------------
# Determinism and the other task group


def test_preparing_again_is_byte_identical(prepared, raw_dir: Path, tmp_path: Path) -> None:
    out, schema = prepared
    again = prepare_census(raw_dir, tmp_path, "income-marital", 0)
    assert again == schema
    assert again["data_hash"] == schema["data_hash"] == data_hash(tmp_path)
    for split in SPLITS:
        assert (tmp_path / f"{split}.npz").read_bytes() == (out / f"{split}.npz").read_bytes(), split
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_education_marital_group(education_seed1) -> None:
    out, schema = education_seed1
    assert [t["name"] for t in schema["tasks"]] == ["education", "marital"]
    assert schema["main_task"] == "education"
    assert schema["task_group"] == "education-marital"
    assert schema["split_seed"] == 1
    a = load_arrays(out)
    education_rate = float(a["train"]["y"][:, 0].mean())
    assert 0.15 < education_rate < 0.25
    assert schema["splits"]["train"]["label_rate"]["marital"] == pytest.approx(README_TRAIN_RATES["marital"], abs=1e-3)
    for split, rows in ROWS.items():
        assert a[split]["y"].shape == (rows, 2)
    assert -1 < schema["label_correlation_train"] < 0


def test_split_seed_changes_only_validation_and_test(prepared, arrays, education_seed1, raw_dir: Path) -> None:
    out, schema = education_seed1
    assert schema["data_hash"] != prepared[1]["data_hash"]
    assert schema["features"] == prepared[1]["features"]
    other = load_arrays(out)
    # Training rows and encoding do not depend on the split seed or the task group.
    np.testing.assert_array_equal(other["train"]["x_cat"], arrays["train"]["x_cat"])
    np.testing.assert_array_equal(other["train"]["x_num"], arrays["train"]["x_num"])
    np.testing.assert_array_equal(other["train"]["y"][:, 1], arrays["train"]["y"][:, 1])
    # The held-out halves are different rows of the test file.
    assert not np.array_equal(other["validation"]["x_cat"], arrays["validation"]["x_cat"])
    val_idx, _ = split_validation_test(N_TEST_FILE, 1)
    marital = raw_test_column(raw_dir, "marital_stat")[val_idx]
    np.testing.assert_array_equal(other["validation"]["y"][:, 1], (marital == "Never married").astype(np.float32))


# --------------------------------------------------------------------------------------------------
# Errors, on small temporary files


def census_row(i: int) -> str:
    """One well-formed 42-column line (not real data)."""
    values = [str(i % 90) if c in NUMERIC else f"v{i % 3}" for c in COLUMNS]
    return ", ".join(values) + "\n"


def test_read_raw_parses_a_well_formed_file(tmp_path: Path) -> None:
    path = tmp_path / DATA
    path.write_text("".join(census_row(i) for i in range(4)) + "\n", encoding="utf-8")
    frame = read_raw(path)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 4
    assert frame["sex"].tolist() == ["v0", "v1", "v2", "v0"]  # leading spaces stripped
    assert frame["age"].tolist() == ["0", "1", "2", "3"]


@pytest.mark.fault
def test_wrong_column_count_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / DATA
    bad = census_row(2).replace(", ", ",", 1).rsplit(",", 1)[0] + "\n"  # one column short
    path.write_text(census_row(0) + census_row(1) + bad + census_row(3), encoding="utf-8")
    with pytest.raises(PrepareError) as caught:
        read_raw(path)
    message = str(caught.value)
    assert "line 3" in message
    assert "41 columns" in message and "expected 42" in message
    assert str(path) in message


@pytest.mark.fault
def test_a_malformed_row_names_the_line_and_column(tmp_path: Path) -> None:
    """The right number of columns, but a word where the age should be."""
    path = tmp_path / DATA
    fields = census_row(1).split(",")
    fields[0] = " forty"
    path.write_text(census_row(0) + ",".join(fields) + census_row(2), encoding="utf-8")
    with pytest.raises(PrepareError) as caught:
        read_raw(path)
    assert f"{path}, line 2: column 1 (age) is 'forty', not a number" in str(caught.value)


@pytest.mark.fault
def test_wrong_column_count_is_refused_by_prepare(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / DATA).write_text(census_row(0) + "a, b, c\n", encoding="utf-8")
    (raw / TEST).write_text(census_row(0), encoding="utf-8")
    with pytest.raises(PrepareError, match="line 2"):
        prepare_census(raw, tmp_path / "out", "income-marital", 0)
    assert not (tmp_path / "out").exists()


@pytest.mark.fault
def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / TEST
    path.write_bytes(b"")
    with pytest.raises(PrepareError, match="empty"):
        read_raw(path)


@pytest.mark.fault
def test_missing_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PrepareError) as caught:
        prepare_census(tmp_path / "nothing-here", tmp_path / "out", "income-marital", 0)
    message = str(caught.value)
    assert "does not exist" in message and DATA in message
    assert "download" in message


@pytest.mark.fault
def test_wrong_row_count_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in (DATA, TEST):
        (raw / name).write_text("".join(census_row(i) for i in range(5)), encoding="utf-8")
    with pytest.raises(PrepareError, match="5 rows, expected 199523"):
        prepare_census(raw, tmp_path / "out", "income-marital", 0)


@pytest.mark.fault
def test_unknown_task_group_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(PrepareError) as caught:
        prepare_census(tmp_path, tmp_path / "out", "income-education", 0)
    message = str(caught.value)
    assert "income-education" in message
    for group in census.TASK_GROUPS:
        assert group in message
    assert set(census.TASK_GROUPS) == {"income-marital", "education-marital", "income-marital-education"}


def test_prepare_error_is_a_value_error() -> None:
    assert issubclass(PrepareError, ValueError)


# --------------------------------------------------------------------------------------------------
# The encoder


def tiny_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """A frame with every census column: the given values, "a" for other categorical columns and
    "1" for other numeric ones."""
    full = [{c: row.get(c, "1" if c in NUMERIC else "a") for c in COLUMNS} for row in rows]
    return pd.DataFrame(full, columns=list(COLUMNS))


CATEGORICAL = tuple(c for c in COLUMNS if c not in NUMERIC and c not in census.DROPPED)


def test_encoder_codes_are_sorted_vocabulary_index_plus_one() -> None:
    train = tiny_frame([{"sex": "Male", "race": "White"}, {"sex": "Female", "race": "Black"},
                        {"sex": "Male", "race": "Other"}])
    encoder = Encoder.fit([train], CATEGORICAL, NUMERIC, "log1p_standardise")
    assert list(encoder.vocab) == list(CATEGORICAL)
    assert encoder.vocab["sex"] == ("Female", "Male")
    assert encoder.vocab["race"] == ("Black", "Other", "White")
    new = tiny_frame([{"sex": "Male", "race": "Other"}, {"sex": "Female", "race": "White"},
                      {"sex": "Female", "race": "Black"}])
    x_cat, x_num = encoder.transform(new)
    assert x_cat.dtype == np.int64 and x_num.dtype == np.float32
    assert x_cat.shape == (3, len(CATEGORICAL)) and x_num.shape == (3, len(NUMERIC))
    sex, race, worker = (CATEGORICAL.index(c) for c in ("sex", "race", "class_of_worker"))
    assert x_cat[:, sex].tolist() == [2, 1, 1]
    assert x_cat[:, race].tolist() == [2, 3, 1]
    assert x_cat[:, worker].tolist() == [1, 1, 1]


def test_encoder_maps_unseen_values_to_zero() -> None:
    """Runs under the project's warning filter (pyproject: DeprecationWarnings from replication.* are
    errors), so an unseen value must not go through a deprecated pandas path either."""
    train = tiny_frame([{"sex": "Male", "race": "White"}, {"sex": "Female", "race": "Black"}])
    encoder = Encoder.fit([train], CATEGORICAL, NUMERIC, "log1p_standardise")
    new = tiny_frame([{"sex": "Male", "race": "Asian"}, {"sex": "Unknown", "race": "White"},
                      {"sex": "Female", "race": "Black", "class_of_worker": "never seen"}])
    x_cat, _ = encoder.transform(new)
    sex, race, worker = (CATEGORICAL.index(c) for c in ("sex", "race", "class_of_worker"))
    assert x_cat[:, sex].tolist() == [2, 0, 1]
    assert x_cat[:, race].tolist() == [0, 2, 1]
    assert x_cat[:, worker].tolist() == [1, 1, 0]


def test_encoder_scales_numeric_columns_with_training_statistics() -> None:
    train = tiny_frame([{"age": "0"}, {"age": str(np.e ** 2 - 1)}])  # log1p: 0 and 2
    encoder = Encoder.fit([train], CATEGORICAL, NUMERIC, "log1p_standardise")
    assert encoder.mean["age"] == pytest.approx(1.0)
    assert encoder.std["age"] == pytest.approx(1.0)  # population std (ddof 0)
    # A constant column keeps std 1, so it scales to 0 instead of NaN.
    assert encoder.std["wage_per_hour"] == 1.0
    _, x_num = encoder.transform(tiny_frame([{"age": str(np.e ** 3 - 1)}, {"age": "0"}]))
    k = NUMERIC.index("age")
    np.testing.assert_allclose(x_num[:, k], [2.0, -1.0], rtol=1e-6)
    np.testing.assert_array_equal(x_num[:, NUMERIC.index("wage_per_hour")], [0.0, 0.0])


def test_numeric_buckets_add_one_quantile_feature_per_continuous_column() -> None:
    ages = ["0", "10", "20", "30", "40", "50", "60", "70"]
    train = tiny_frame([{"age": a} for a in ages])
    encoder = Encoder.fit([train], CATEGORICAL, NUMERIC, "log1p_standardise", numeric_buckets=4)
    names = [f["name"] for f in encoder.categorical_features()]
    assert names == list(CATEGORICAL) + [f"{c}_bucket" for c in NUMERIC]
    # Quartile edges of log1p(age) on the training rows: 4 buckets -> codes 1..4 (0 stays reserved).
    edges = np.quantile(np.log1p(np.array(ages, dtype=float)), [0.25, 0.5, 0.75])
    np.testing.assert_allclose(encoder.edges["age"], edges)
    assert encoder.categorical_features()[len(CATEGORICAL) + NUMERIC.index("age")]["cardinality"] == 5
    x_cat, _ = encoder.transform(tiny_frame([{"age": "0"}, {"age": "35"}, {"age": "1000"}]))
    assert x_cat.shape[1] == len(CATEGORICAL) + len(NUMERIC)
    assert x_cat[:, len(CATEGORICAL) + NUMERIC.index("age")].tolist() == [1, 3, 4]
    # A constant column has a single edge: two codes, both within its cardinality.
    k = len(CATEGORICAL) + NUMERIC.index("wage_per_hour")
    assert x_cat[:, k].max() < encoder.categorical_features()[k]["cardinality"]


@pytest.mark.fault
def test_numeric_buckets_must_be_zero_or_at_least_two(tmp_path: Path) -> None:
    with pytest.raises(census.PrepareError, match="numeric_buckets = 1"):
        census.prepare_census(tmp_path, tmp_path / "out", numeric_buckets=1)
