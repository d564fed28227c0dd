"""Prepare UCI Census-Income (KDD) under the MMoE paper's protocol (Ma et al. 2018, Sec. 5.2).

- 199,523 training rows (``census-income.data``); the 99,762 rows of ``census-income.test`` are split
  1:1 at random, by a recorded split seed, into validation and test (49,881 each).
- The instance weight is dropped (it is a sampling weight, not a feature).
- Education and marital status are removed from the features (both are task labels), and so is the
  income column (the label of the income task; never a feature in either task group).
- Categorical codes and numeric scaling are fitted on the training rows only; a value unseen in
  training maps to the reserved code 0.

Output: ``train.npz``, ``validation.npz``, ``test.npz`` (``x_cat`` int64 (n, n_cat), ``x_num``
float32 (n, n_num), ``y`` float32 (n, n_tasks), NaN where a label is missing) and ``schema.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from replication.data.download import CENSUS_FILES
from replication.data.processed import data_hash
from replication.io import save_npz, sha256_file, write_json

# Column names from UCI's census-income.names, in file order (42 columns).
COLUMNS = (
    "age", "class_of_worker", "detailed_industry_recode", "detailed_occupation_recode", "education",
    "wage_per_hour", "enroll_in_edu_inst_last_wk", "marital_stat", "major_industry_code",
    "major_occupation_code", "race", "hispanic_origin", "sex", "member_of_a_labor_union",
    "reason_for_unemployment", "full_or_part_time_employment_stat", "capital_gains", "capital_losses",
    "dividends_from_stocks", "tax_filer_stat", "region_of_previous_residence",
    "state_of_previous_residence", "detailed_household_and_family_stat",
    "detailed_household_summary_in_household", "instance_weight", "migration_code_change_in_msa",
    "migration_code_change_in_reg", "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer", "family_members_under_18",
    "country_of_birth_father", "country_of_birth_mother", "country_of_birth_self", "citizenship",
    "own_business_or_self_employed", "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits",
    "weeks_worked_in_year", "year", "income",
)
# Continuous columns per census-income.names; every other feature is categorical (the industry,
# occupation, business-ownership and veterans columns are numeric *codes*, so categorical).
NUMERIC = (
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "num_persons_worked_for_employer", "weeks_worked_in_year",
)
DROPPED = ("instance_weight", "education", "marital_stat", "income")
TRAIN_FILE, TEST_FILE = "census-income.data", "census-income.test"
EXPECTED_ROWS = {TRAIN_FILE: 199_523, TEST_FILE: 99_762}

# "Education >= college": an associate degree or higher. Of the three readings (bachelor or higher,
# associate or higher, any college), this one's label correlation with never-married on the training
# rows is the closest to the MMoE paper's |0.2373|; prepare records the correlation in schema.json.
COLLEGE = frozenset({
    "Associates degree-occup /vocational", "Associates degree-academic program",
    "Bachelors degree(BA AB BS)", "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)", "Doctorate degree(PhD EdD)",
})


@dataclass(frozen=True)
class Task:
    name: str
    type: str
    column: str
    label: Callable[[pd.Series], np.ndarray]
    definition: str


def _is(value: str) -> Callable[[pd.Series], np.ndarray]:
    return lambda s: (s == value).to_numpy(np.float32)


INCOME = Task("income", "binary", "income", _is("50000+."), "income column == '50000+.' (above $50K)")
MARITAL = Task("marital", "binary", "marital_stat", _is("Never married"), "marital status == 'Never married'")
EDUCATION = Task(
    "education", "binary", "education", lambda s: s.isin(COLLEGE).to_numpy(np.float32),
    "education is an associate degree or higher: " + "; ".join(sorted(COLLEGE)),
)
# Main task first: model selection on "main task only" uses tasks[0].
TASK_GROUPS: dict[str, tuple[Task, ...]] = {
    "income-marital": (INCOME, MARITAL),
    "education-marital": (EDUCATION, MARITAL),
}


class PrepareError(ValueError):
    """A raw file or an option that prepare cannot use; the message says what and how to fix it."""


def read_raw(path: Path) -> pd.DataFrame:
    """Read one raw census file as strings, checking every row has the 42 documented columns."""
    if not path.is_file():
        raise PrepareError(f"{path} does not exist; run `python -m replication download census --out {path.parent}` first")
    if path.stat().st_size == 0:
        raise PrepareError(f"{path} is empty; delete it and download it again")
    numeric = [COLUMNS.index(c) for c in NUMERIC]
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split(",")
            if len(fields) != len(COLUMNS):
                raise PrepareError(
                    f"{path}, line {number}: {len(fields)} columns, expected {len(COLUMNS)}; "
                    "the file is not the UCI census-income file (download it again; its SHA-256 is checked)"
                )
            for i in numeric:
                try:
                    float(fields[i])
                except ValueError:
                    raise PrepareError(
                        f"{path}, line {number}: column {i + 1} ({COLUMNS[i]}) is {fields[i].strip()!r}, not a "
                        "number; the file is not the UCI census-income file (download it again)") from None
    frame = pd.read_csv(path, header=None, names=COLUMNS, dtype=str, skipinitialspace=True,
                        keep_default_na=False)
    return frame.apply(lambda column: column.str.strip())


def split_validation_test(n_rows: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 1:1 split of the test file's rows: (validation indices, test indices), each sorted."""
    order = np.random.default_rng(split_seed).permutation(n_rows)
    half = n_rows // 2
    return np.sort(order[:half]), np.sort(order[half:])


@dataclass(frozen=True)
class Encoder:
    """Categorical vocabularies and numeric scaling, fitted on training rows only."""

    vocab: dict[str, tuple[str, ...]]  # column -> sorted values seen in training (code = index + 1)
    mean: dict[str, float]
    std: dict[str, float]
    # Optional: numeric column -> interior quantile edges; its bucket becomes an extra categorical feature.
    edges: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def fit(cls, train: pd.DataFrame, categorical: tuple[str, ...], numeric_buckets: int = 0) -> "Encoder":
        vocab = {c: tuple(sorted(train[c].unique())) for c in categorical}
        num = np.log1p(train[list(NUMERIC)].astype(np.float64))
        edges = {}
        if numeric_buckets > 1:
            quantiles = np.linspace(0, 1, numeric_buckets + 1)[1:-1]
            edges = {c: tuple(np.unique(np.quantile(num[c], quantiles))) for c in NUMERIC}
        return cls(vocab, num.mean().to_dict(), num.std(ddof=0).replace(0.0, 1.0).to_dict(), edges)

    def categorical_features(self) -> list[dict]:
        """Name and cardinality (code 0 included) of every categorical feature, in column order."""
        return [{"name": c, "cardinality": len(v) + 1} for c, v in self.vocab.items()] + [
            {"name": f"{c}_bucket", "cardinality": len(e) + 2} for c, e in self.edges.items()]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        num = np.log1p(frame[list(NUMERIC)].astype(np.float64))
        codes = [_codes(frame[c], values) for c, values in self.vocab.items()]
        codes += [np.searchsorted(e, num[c].to_numpy(), side="right") + 1 for c, e in self.edges.items()]
        x_num = ((num - pd.Series(self.mean)) / pd.Series(self.std)).to_numpy(np.float32)
        return np.stack(codes, axis=1).astype(np.int64), x_num


def _codes(column: pd.Series, values: tuple[str, ...]) -> np.ndarray:
    codes = pd.Index(values).get_indexer(column).astype(np.int64)
    return codes + 1  # unseen values get -1, hence the reserved code 0


def prepare_census(raw_dir: Path, out_dir: Path, task_group: str = "income-marital", split_seed: int = 0,
                   numeric_buckets: int = 0) -> dict:
    """Build the processed arrays and schema for one task group; returns the schema."""
    if task_group not in TASK_GROUPS:
        raise PrepareError(f"unknown task group {task_group!r}; choose one of {', '.join(TASK_GROUPS)}")
    if numeric_buckets < 0 or numeric_buckets == 1:
        raise PrepareError(f"numeric_buckets = {numeric_buckets}: use 0 (off) or at least 2 quantile buckets")
    tasks = TASK_GROUPS[task_group]
    frames = {name: read_raw(Path(raw_dir) / name) for name in (TRAIN_FILE, TEST_FILE)}
    for name, frame in frames.items():
        if len(frame) != EXPECTED_ROWS[name]:
            raise PrepareError(f"{name} has {len(frame)} rows, expected {EXPECTED_ROWS[name]}; download it again")
    raw_hashes = {name: sha256_file(Path(raw_dir) / name) for name in frames}
    for name, digest in raw_hashes.items():
        if digest != CENSUS_FILES[name]:
            raise PrepareError(f"{name} has SHA-256 {digest}, not the official {CENSUS_FILES[name]}; download it again")

    categorical = tuple(c for c in COLUMNS if c not in NUMERIC and c not in DROPPED)
    train = frames[TRAIN_FILE]
    val_idx, test_idx = split_validation_test(len(frames[TEST_FILE]), split_seed)
    splits = {
        "train": train,
        "validation": frames[TEST_FILE].iloc[val_idx],
        "test": frames[TEST_FILE].iloc[test_idx],
    }
    encoder = Encoder.fit(train, categorical, numeric_buckets)
    out_dir = Path(out_dir)
    split_info = {}
    for split, frame in splits.items():
        x_cat, x_num = encoder.transform(frame)
        y = np.stack([task.label(frame[task.column]) for task in tasks], axis=1)
        save_npz(out_dir / f"{split}.npz", x_cat=x_cat, x_num=x_num, y=y)
        split_info[split] = {
            "rows": len(frame),
            "label_rate": {t.name: float(np.nanmean(y[:, k])) for k, t in enumerate(tasks)},
            "unseen_categorical_values": int((x_cat == 0).sum()),
            "sha256": sha256_file(out_dir / f"{split}.npz"),
        }
    train_labels = np.stack([t.label(train[t.column]) for t in tasks], axis=1)
    schema = {
        "dataset": "census-income-kdd",
        "task_group": task_group,
        "split_seed": split_seed,
        "raw_sha256": raw_hashes,
        "features": {
            "categorical": encoder.categorical_features(),
            "numeric": list(NUMERIC),
            "numeric_transform": "log1p, then standardised with the training mean and std",
            "dropped": list(DROPPED),
        },
        "tasks": [{"name": t.name, "type": t.type, "definition": t.definition} for t in tasks],
        "main_task": tasks[0].name,
        "label_correlation_train": float(np.corrcoef(train_labels.T)[0, 1]),
        "splits": split_info,
        "data_hash": data_hash(out_dir),
    }
    if numeric_buckets:
        schema["features"]["numeric_buckets"] = numeric_buckets
    write_json(out_dir / "schema.json", schema)
    return schema

