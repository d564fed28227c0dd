"""Expert utilization (PLE Fig. 8): how much weight every gate puts on every expert over the test set.

The trainer records, for the selected weights of every gated model, the mean and standard deviation
over the test rows of each gate's weight on each expert (``gates_test`` in the run record); this
module lays them out as one tidy table. It reads records only (no torch, no training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from replication.config import ConfigError
from replication.io import write_text
from replication.records import load_records

COLUMNS = ["model", "seed", "level", "gate", "expert", "expert_kind", "expert_owner", "mean", "std"]


def split_gate_name(name: str) -> tuple[int, str]:
    """``"level2/income"`` -> (2, "income"); a single-level model's ``"income"`` -> (1, "income")."""
    head, sep, rest = name.partition("/")
    if sep and head.startswith("level") and head[5:].isdigit():
        return int(head[5:]), rest
    return 1, name


def expert_table(records: list[dict]) -> pd.DataFrame:
    """One row per (model, seed, gate, expert), in record order; empty if no model is gated."""
    rows = []
    for record in records:
        for name, usage in record.get("gates_test", {}).items():
            level, gate = split_gate_name(name)
            for expert, mean, std in zip(usage["experts"], usage["mean"], usage["std"]):
                owner = expert.split("/")[0]
                kind = "shared" if owner == "shared" else "task-specific"
                rows.append([record["model"], record["seed"], level, gate, expert, kind, owner, mean, std])
    return pd.DataFrame(rows, columns=COLUMNS)


def write_experts(runs: Path | Sequence[Path], out: Path) -> pd.DataFrame:
    """Write the expert-utilization table of every gated model under ``runs`` (one folder or several) as CSV."""
    table = expert_table(load_records(runs))
    if table.empty:
        raise ConfigError(f"no gated model's run records under {runs} carry gate weights "
                          "(gates_test); train a gated model (omoe, mmoe, ml_mmoe, cgc, ple) first")
    write_text(Path(out), table.to_csv(index=False, float_format="%.6g"))
    return table
