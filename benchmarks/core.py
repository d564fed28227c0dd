"""The benchmark's pure parts: epoch timing, the peers' argument mapping, the feature conversion and
the tables. Nothing here imports a peer library or trains, so the tests exercise all of it in seconds.
"""

from __future__ import annotations

import itertools
import math
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

PROJECT = "mtl-replication"
TORCH_RECHUB = "torch-rechub"
DEEPCTR_TORCH = "deepctr-torch"
LIBRARIES = (PROJECT, TORCH_RECHUB, DEEPCTR_TORCH)
# The models every library has, by this project's registry names, with the names the tables use.
MODELS = {"ple": "PLE", "mmoe": "MMoE", "shared_bottom": "Shared-Bottom"}
MIN_TIMED_EPOCHS = 3


# ---------------------------------------------------------------------------------------------------
# Timing


def time_epochs(run_epoch: Callable[[int], Any], warmup: int, timed: int,
                clock: Callable[[], float] = time.perf_counter, stop: Callable[[int], bool] | None = None) -> list[float]:
    """Run epochs (``run_epoch(k)``, k from 0) and return the seconds of the ``timed`` ones after the
    first ``warmup``, each measured by ``clock`` around its own call only. After epoch k + 1,
    ``stop(k + 1)`` says whether to end (a model selection's untimed validation may run there); by
    default training ends after ``warmup + timed`` epochs."""
    if warmup < 0 or timed < 1:
        raise ValueError(f"need warmup >= 0 and timed >= 1 epochs, got {warmup} and {timed}")
    stop = stop or (lambda epoch: epoch >= warmup + timed)
    seconds = []
    for k in itertools.count():
        start = clock()
        run_epoch(k)
        elapsed = clock() - start
        if warmup <= k < warmup + timed:
            seconds.append(elapsed)
        if stop(k + 1):
            return seconds
    raise AssertionError("unreachable")


def epoch_seconds(marks: Sequence[tuple[float, float]], warmup: int) -> list[float]:
    """The durations of the epochs after the first ``warmup`` ones, from (begin, end) clock readings
    taken by a library's own epoch callbacks (deepctr-torch's ``fit`` runs its epochs itself)."""
    if len(marks) <= warmup:
        raise ValueError(f"{len(marks)} epoch(s) recorded, but {warmup} are warm-up: nothing was timed")
    return [end - begin for begin, end in marks[warmup:]]


def median_seconds(seconds: Sequence[float]) -> float:
    """The median of the timed epochs; fewer than :data:`MIN_TIMED_EPOCHS` is refused."""
    if len(seconds) < MIN_TIMED_EPOCHS:
        raise ValueError(f"a median needs at least {MIN_TIMED_EPOCHS} timed epochs, got {len(seconds)}")
    return float(statistics.median(seconds))


def slowdown(peer_seconds: float, project_seconds: float) -> float:
    """How many times longer a peer's epoch takes than this project's (peer / ours)."""
    if project_seconds <= 0:
        raise ValueError(f"this project's epoch time must be > 0, got {project_seconds}")
    return peer_seconds / project_seconds


def cpu_busy_seconds(proc_stat: str) -> float:
    """Seconds every CPU of the machine spent busy since boot, from the text of ``/proc/stat``
    (its ``cpu`` line, in USER_HZ = 1/100 s ticks; idle and iowait are not busy)."""
    fields = next(line for line in proc_stat.splitlines() if line.startswith("cpu "))
    ticks = [int(v) for v in fields.split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    guest = sum(ticks[8:10])  # guest time is already counted in user and nice
    return (sum(ticks) - guest - idle) / 100.0


def others_cores(busy_seconds: float, own_cpu_seconds: float, wall_seconds: float) -> float:
    """The mean number of cores other processes kept busy during a measurement: the machine's busy
    CPU time less the measurement's own, per second of wall time (0 on an idle machine). Other jobs
    on the cores slow every library's epochs, so the tables show this next to each time."""
    if wall_seconds <= 0:
        raise ValueError(f"wall time must be > 0, got {wall_seconds}")
    return max(0.0, busy_seconds - own_cpu_seconds) / wall_seconds


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------
# The same arrays in each peer's input format


@dataclass(frozen=True)
class FeatureSpec:
    """One input column: ``sparse`` (a categorical code, embedded) or ``dense`` (one number)."""

    name: str
    kind: str
    cardinality: int = 0


def feature_specs(schema: Mapping[str, Any]) -> list[FeatureSpec]:
    """The processed data's columns in this project's order: categorical features (the columns of
    ``x_cat``), then numeric ones (``x_num``). Both peers concatenate embeddings and dense values in
    this order too, so every library sees the same input vector."""
    features = schema["features"]
    return ([FeatureSpec(f["name"], "sparse", int(f["cardinality"])) for f in features["categorical"]] +
            [FeatureSpec(name, "dense") for name in features["numeric"]])


def to_columns(x_cat: np.ndarray, x_num: np.ndarray, specs: Sequence[FeatureSpec]) -> dict[str, np.ndarray]:
    """``{feature name: (rows,) array}``, the input both peers take: codes stay int64 and numbers
    float32, unchanged (views of the project's arrays, not copies)."""
    sparse = [s for s in specs if s.kind == "sparse"]
    dense = [s for s in specs if s.kind == "dense"]
    if x_cat.shape[1] != len(sparse) or x_num.shape[1] != len(dense):
        raise ValueError(f"arrays of {x_cat.shape[1]} categorical and {x_num.shape[1]} numeric columns do not match "
                         f"the {len(sparse)} sparse and {len(dense)} dense features")
    columns = {s.name: x_cat[:, k] for k, s in enumerate(sparse)}
    columns |= {s.name: x_num[:, k] for k, s in enumerate(dense)}
    return columns


def from_columns(columns: Mapping[str, np.ndarray], specs: Sequence[FeatureSpec]) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`to_columns`: ``(x_cat, x_num)`` rebuilt from the columns."""
    rows = len(next(iter(columns.values()))) if columns else 0
    sparse = [columns[s.name] for s in specs if s.kind == "sparse"]
    dense = [columns[s.name] for s in specs if s.kind == "dense"]
    x_cat = np.stack(sparse, axis=1) if sparse else np.zeros((rows, 0), dtype=np.int64)
    x_num = np.stack(dense, axis=1) if dense else np.zeros((rows, 0), dtype=np.float32)
    return x_cat, x_num


def check_labels(y: np.ndarray, split: str) -> None:
    """The peers have no notion of a missing label (this project masks NaN); refuse data that has one."""
    missing = int(np.isnan(y).sum())
    if missing:
        raise ValueError(f"the {split} split has {missing} missing label(s); the peer libraries cannot train on them")


# ---------------------------------------------------------------------------------------------------
# This project's hyperparameters in each peer's terms


def _units(hparams: Mapping[str, Any], key: str) -> list[int]:
    return [int(u) for u in hparams[key]]


def _check_model(model: str, library: str) -> None:
    if model not in MODELS:
        raise ValueError(f"{library} has no counterpart of {model!r}; benchmarked models: {', '.join(MODELS)}")


def rechub_arguments(model: str, hparams: Mapping[str, Any], n_tasks: int) -> dict[str, Any]:
    """Keyword arguments of torch-rechub's MMOE / PLE / SharedBottom (besides ``features`` and
    ``task_types``) for this project's hyperparameters. torch-rechub's MLP has no switch for its
    BatchNorm; dropout is set to 0 (as here)."""
    _check_model(model, TORCH_RECHUB)
    towers = [{"dims": _units(hparams, "tower_units"), "dropout": 0.0} for _ in range(n_tasks)]
    if model == "mmoe":
        return {"n_expert": int(hparams["n_experts"]),
                "expert_params": {"dims": _units(hparams, "expert_units"), "dropout": 0.0},
                "tower_params_list": towers}
    if model == "ple":
        return {"n_level": int(hparams["n_levels"]), "n_expert_specific": int(hparams["n_task_experts"]),
                "n_expert_shared": int(hparams["n_shared_experts"]),
                "expert_params": {"dims": _units(hparams, "expert_units"), "dropout": 0.0},
                "tower_params_list": towers}
    return {"bottom_params": {"dims": _units(hparams, "bottom_units"), "dropout": 0.0}, "tower_params_list": towers}


def deepctr_arguments(model: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of deepctr-torch's MMOE / PLE / SharedBottom (besides the feature columns,
    task types and names) for this project's hyperparameters: gates are one linear layer
    (``gate_dnn_hidden_units=()``, as here), no dropout, no batch norm, and no L2 penalty (this
    project trains with ``weight_decay`` 0; deepctr-torch's default is 1e-5 on the embeddings)."""
    _check_model(model, DEEPCTR_TORCH)
    common = {"tower_dnn_hidden_units": tuple(_units(hparams, "tower_units")), "l2_reg_linear": 0.0,
              "l2_reg_embedding": 0.0, "l2_reg_dnn": 0.0, "dnn_dropout": 0.0, "dnn_use_bn": False}
    if model == "mmoe":
        return {"num_experts": int(hparams["n_experts"]), "expert_dnn_hidden_units": tuple(_units(hparams, "expert_units")),
                "gate_dnn_hidden_units": (), **common}
    if model == "ple":
        return {"num_levels": int(hparams["n_levels"]), "specific_expert_num": int(hparams["n_task_experts"]),
                "shared_expert_num": int(hparams["n_shared_experts"]),
                "expert_dnn_hidden_units": tuple(_units(hparams, "expert_units")), "gate_dnn_hidden_units": (), **common}
    return {"bottom_dnn_hidden_units": tuple(_units(hparams, "bottom_units")), **common}


# ---------------------------------------------------------------------------------------------------
# Synthetic data sized by its training rows


def total_rows_for_train(train_rows: int, validation_fraction: float, test_fraction: float,
                         split_rows: Callable[[int], Mapping[str, int]]) -> int:
    """The smallest total row count whose training split (``split_rows(total)["train"]``, the
    generator's own rounding) holds exactly ``train_rows`` rows."""
    guess = math.floor(train_rows / (1.0 - validation_fraction - test_fraction))
    for total in range(max(guess - 3, train_rows), guess + 4):
        if split_rows(total)["train"] == train_rows:
            return total
    raise ValueError(f"no total row count gives exactly {train_rows} training rows with fractions "
                     f"{validation_fraction} and {test_fraction}")


# ---------------------------------------------------------------------------------------------------
# Tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(headers)} columns")
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt(value: float | None, digits: int) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


FIXED_COST_BATCH = 16  # rows per step at which a step's arithmetic is negligible beside its fixed cost

DEFAULT_PROFILE = "default"  # this project's run with params.yaml as it is (no profile)


def comparison_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One tidy row per (model, library, profile), models in :data:`MODELS` order, then this
    project's runs (the default first, then each profile, in the order given), then the peers in
    :data:`LIBRARIES` order. A row measured in several processes takes the median of their medians
    as its time, and its test AUC, selected epoch and epochs from the process that trained to
    selection (the one with a ``selected_epoch``). Every row carries the slowdown against each of
    this project's runs of the same model (``slowdown_vs_project`` against the default;
    ``slowdown_vs_project_<profile>`` against a profile's run), ``None`` where that run is missing."""
    profiles = list(dict.fromkeys([DEFAULT_PROFILE] + [r.get("profile", DEFAULT_PROFILE) for r in results
                                                       if r["library"] == PROJECT]))
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["model"], r["library"], r.get("profile", DEFAULT_PROFILE)), []).append(r)
    time_of = {key: pooled_seconds(group) for key, group in groups.items()}
    keys = [(library, profile) for library in LIBRARIES for profile in (profiles if library == PROJECT else [DEFAULT_PROFILE])]
    rows = []
    for model in MODELS:
        for library, profile in keys:
            group = groups.get((model, library, profile))
            if group is None:
                continue
            selected = next((r for r in group if r.get("selected_epoch") is not None), group[0])
            median = time_of[model, library, profile]
            rows.append({
                "section": "peers", "model": model, "library": library, "version": group[0].get("version", ""),
                "profile": profile if library == PROJECT else "", "rows": group[0]["rows"], **pooled(group),
                **{slowdown_key(p): slowdown(median, time_of[model, PROJECT, p]) if (model, PROJECT, p) in time_of
                   else None for p in profiles},
                **{f"test_auc_{task}": auc for task, auc in selected["test_auc"].items()},
                "selected_epoch": selected.get("selected_epoch"), "epochs_trained": selected["epochs_trained"],
                "tensor_mb": selected.get("tensor_mb"), "n_parameters": selected["n_parameters"],
                **validation_cost(group, median),
            })
    return rows


def validation_cost(group: Sequence[Mapping[str, Any]], train_seconds: float) -> dict[str, float | None]:
    """This project's validation pass after each epoch (the loop times it apart from training): the
    median over processes of each one's median seconds, and its share of a whole epoch (training plus
    validation). None for the peers, whose validation the bench runs outside their timed epochs."""
    timed = [r["validation_seconds"] for r in group if r.get("validation_seconds")]
    if not timed:
        return {"validation_seconds_per_epoch": None, "validation_share": None}
    seconds = float(statistics.median([statistics.median(v) for v in timed]))
    return {"validation_seconds_per_epoch": seconds, "validation_share": seconds / (seconds + train_seconds)}


def pooled_seconds(group: Sequence[Mapping[str, Any]]) -> float:
    """The epoch time of one measurement made in several processes: the median of their medians."""
    return float(statistics.median([median_seconds(r["epoch_seconds"]) for r in group]))


def pooled(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The columns every section's row takes from the processes that measured it: the pooled epoch
    time, each process's median and every timed epoch, the largest peak RSS and load, and the
    attempts summed."""
    others = [r["others_cores"] for r in group if r.get("others_cores") is not None]
    return {
        "seconds_per_epoch": pooled_seconds(group), "processes": len(group),
        "process_medians": ";".join(f"{median_seconds(r['epoch_seconds']):.4f}" for r in group),
        "epoch_seconds": ";".join(f"{s:.4f}" for r in group for s in r["epoch_seconds"]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in group), "others_cores": max(others) if others else None,
        "attempts": sum(r.get("attempts") or 1 for r in group),
    }


def slowdown_key(profile: str) -> str:
    return "slowdown_vs_project" if profile == DEFAULT_PROFILE else f"slowdown_vs_project_{profile}"


def comparison_markdown(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> str:
    profiles = [r["profile"] for r in rows if r["library"] == PROJECT] or [DEFAULT_PROFILE]
    profiles = list(dict.fromkeys([DEFAULT_PROFILE, *profiles]))
    headers = ["model", "library", "s/epoch (median)", "each process's median (s)",
               *("peer / ours" if p == DEFAULT_PROFILE else f"peer / ours ({p})" for p in profiles),
               *(f"test AUC {t}" for t in tasks), "epochs (selected / run)", "validation s/epoch (share)",
               "peak RSS (MB)", "tensors (MB)", "parameters", "other jobs (cores, max)"]
    cells = []
    for r in rows:
        label = f"{r['library']} {r['version']}".strip()
        if r["library"] == PROJECT and r["profile"] != DEFAULT_PROFILE:
            label += f" (profiles.{r['profile']})"
        ratios = [r.get(slowdown_key(p)) for p in profiles]
        selected = "" if r.get("selected_epoch") is None else f"{r['selected_epoch']} / {r['epochs_trained']}"
        cells.append([
            MODELS[r["model"]], label, fmt(r["seconds_per_epoch"], 2),
            ", ".join(f"{float(s):.2f}" for s in r["process_medians"].split(";")),
            *("" if ratio is None else f"{ratio:.2f}x" for ratio in ratios),
            *(fmt(r.get(f"test_auc_{t}"), 4) for t in tasks), selected, validation_cell(r),
            fmt(r["peak_rss_mb"], 0), fmt(r["tensor_mb"], 1), f"{r['n_parameters']:,}", fmt(r.get("others_cores"), 2),
        ])
    return markdown_table(headers, cells)


def validation_cell(row: Mapping[str, Any]) -> str:
    seconds, share = row.get("validation_seconds_per_epoch"), row.get("validation_share")
    return "" if seconds in (None, "") else f"{float(seconds):.2f} ({100 * float(share):.0f}%)"


def summary_markdown(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> str:
    """The peers section in brief, as the README quotes it: per model, each library's seconds per
    epoch and test AUCs (tasks joined by " / "), with each peer's slowdown against every one of this
    project's runs in brackets. ``rows`` as :func:`comparison_rows` gives them, or as ``bench.csv``
    holds them (strings)."""
    def num(value: Any) -> float | None:
        return None if value in (None, "") else float(value)

    columns = list(dict.fromkeys((r["library"], r["profile"] or "", r["version"]) for r in rows))
    profiles = [profile for library, profile, _ in columns if library == PROJECT]
    headers = ["model"] + [(f"this project ({profile})" if profile == DEFAULT_PROFILE else f"this project (`profiles.{profile}`)")
                           if library == PROJECT else f"{library} {version}" for library, profile, version in columns]
    cells = []
    for model in MODELS:
        by_column = {(r["library"], r["profile"] or "", r["version"]): r for r in rows if r["model"] == model}
        if not by_column:
            continue
        line = [MODELS[model]]
        for column in columns:
            r = by_column.get(column)
            if r is None:
                line.append("")
                continue
            aucs = " / ".join(fmt(num(r.get(f"test_auc_{t}")), 4) for t in tasks)
            cell = f"{num(r['seconds_per_epoch']):.2f} s, AUC {aucs}"
            if column[0] != PROJECT:
                ratios = [num(r.get(slowdown_key(p))) for p in profiles]
                cell += " (" + "; ".join("" if x is None else f"{x:.2f}x" for x in ratios) + ")"
            line.append(cell)
        cells.append(line)
    return markdown_table(headers, cells)


def scaling_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One tidy row per (model, data, rows), in the order given."""
    rows = []
    for r in results:
        median = median_seconds(r["epoch_seconds"])
        rows.append({
            "section": "scaling", "model": r["model"], "library": PROJECT, "version": r.get("version", ""),
            "data": r["data"], "rows": r["rows"], "seconds_per_epoch": median,
            "epoch_seconds": ";".join(f"{s:.4f}" for s in r["epoch_seconds"]),
            "microseconds_per_row": 1e6 * median / r["rows"], "peak_rss_mb": r["peak_rss_mb"],
            "tensor_mb": r.get("tensor_mb"), "n_parameters": r["n_parameters"], "others_cores": r.get("others_cores"),
            "attempts": r.get("attempts"),
        })
    return rows


def scaling_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    headers = ["model", "data", "training rows", "s/epoch (median)", "timed epochs (s)", "µs/row", "peak RSS (MB)",
               "tensors (MB)", "parameters", "other jobs (cores)"]
    cells = [[MODELS.get(r["model"], r["model"]), r["data"], f"{r['rows']:,}", fmt(r["seconds_per_epoch"], 2),
              ", ".join(f"{float(s):.2f}" for s in r["epoch_seconds"].split(";")), fmt(r["microseconds_per_row"], 2),
              fmt(r["peak_rss_mb"], 0), fmt(r["tensor_mb"], 1), f"{r['n_parameters']:,}",
              fmt(r.get("others_cores"), 2)] for r in rows]
    return markdown_table(headers, cells)


def together_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One tidy row per (model, seeds trained together), in first-measured order. A measurement made
    in several processes is the median of the processes' medians (a lone run's epoch time varies
    from process to process more than within one). Seconds per epoch of the whole ensemble, per seed,
    and the speed-up per seed over the same model's lone run (``together`` = 1) when measured.

    The lone run's fixed cost per epoch (``fixed_seconds``: the same number of steps at a few rows
    each, :func:`benchmarks.runners.fixed_cost_seconds`) bounds what S seeds together can give when
    each seed's arithmetic costs what it costs in a lone run: at best the ensemble pays the fixed
    part once instead of S times, so its per-seed speed-up is at most
    lone / (lone - fixed + fixed / S). Only doing the arithmetic itself faster (fusing kernels,
    lower precision) goes beyond it."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["model"], r["together"]), []).append(r)
    rows = []
    for (model, together), group in groups.items():
        columns = pooled(group)
        per_seed = columns["seconds_per_epoch"] / together
        lone_group = groups.get((model, 1), [])
        lone = pooled_seconds(lone_group) if lone_group else None
        fixed_group = [{"epoch_seconds": r["fixed_seconds"]} for r in lone_group if r.get("fixed_seconds")]
        fixed = pooled_seconds(fixed_group) if fixed_group else None
        rows.append({
            "section": "together", "model": model, "library": PROJECT, "version": group[0].get("version", ""),
            "together": together, "threads": group[0].get("threads"), **columns, "seconds_per_seed_epoch": per_seed,
            "speedup_per_seed": None if lone is None else lone / per_seed, "n_parameters": group[0]["n_parameters"],
            "fixed_seconds_per_epoch": fixed,
            "speedup_bound": None if lone is None or fixed is None else lone / (lone - fixed + fixed / together),
        })
    return rows


def together_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    def times(value: float | None) -> str:
        return fmt(value, 2) + ("x" if value is not None else "")

    headers = ["model", "seeds together", "processes", "s/epoch (median, all seeds)", "each process's median (s)",
               "s per seed-epoch", "per-seed speed-up over one lone run", "fixed cost of a lone epoch (s)",
               "most it could be (fixed cost paid once)", "peak RSS (MB)", "other jobs (cores, max)"]
    cells = [[MODELS.get(r["model"], r["model"]), str(r["together"]), str(r["processes"]), fmt(r["seconds_per_epoch"], 2),
              ", ".join(f"{float(s):.2f}" for s in r["process_medians"].split(";")), fmt(r["seconds_per_seed_epoch"], 3),
              times(r["speedup_per_seed"]), fmt(r.get("fixed_seconds_per_epoch"), 3), times(r.get("speedup_bound")),
              fmt(r["peak_rss_mb"], 0), fmt(r.get("others_cores"), 2)] for r in rows]
    return markdown_table(headers, cells)


EQUAL_WEIGHTING = "static"  # train.weighting's equal weights (with train.loss_weights empty): the cost baseline


def weighting_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One tidy row per (model, weighting method), in measured order: the training seconds per epoch,
    the validation seconds per epoch, and the training time relative to :data:`EQUAL_WEIGHTING` on the
    same model (``None`` where that was not measured)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["model"], r["weighting"]), []).append(r)
    rows = []
    for (model, method), group in groups.items():
        columns = pooled(group)
        equal = groups.get((model, EQUAL_WEIGHTING))
        rows.append({
            "section": "weighting", "model": model, "library": PROJECT, "version": group[0].get("version", ""),
            "weighting": method, **columns,
            "relative_to_equal": None if equal is None else columns["seconds_per_epoch"] / pooled_seconds(equal),
            "n_parameters": group[0]["n_parameters"], **validation_cost(group, columns["seconds_per_epoch"]),
        })
    return rows


def weighting_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    headers = ["model", "weighting", "training s/epoch (median)", "timed epochs (s)", "relative to equal weights",
               "validation s/epoch (share)", "peak RSS (MB)", "other jobs (cores, max)"]
    cells = [[MODELS.get(r["model"], r["model"]), f"`{r['weighting']}`", fmt(r["seconds_per_epoch"], 2),
              ", ".join(f"{float(s):.2f}" for s in r["epoch_seconds"].split(";")),
              "" if r["relative_to_equal"] is None else f"{r['relative_to_equal']:.2f}x", validation_cell(r),
              fmt(r["peak_rss_mb"], 0), fmt(r.get("others_cores"), 2)] for r in rows]
    return markdown_table(headers, cells)


def profile_auc_rows(reference: Sequence[Mapping[str, Any]], profiled: Sequence[Mapping[str, Any]],
                     profile: str) -> list[dict[str, Any]]:
    """One tidy row per (model, task): the test AUCs of a profile's runs against the default runs of
    the same model, paired by seed (run records, as ``replication.records.load_records`` reads
    them): each side's mean and sample std, the mean paired difference (profile - default) with its
    95% t interval and the paired t-test's p-value, and each side's training seconds summed over
    the paired seeds. Seeds present on one side only are left out and counted."""
    from replication.stats.intervals import t_interval
    from replication.stats.paired import paired_tests

    def by_model(records):
        out: dict[str, dict[int, Mapping[str, Any]]] = {}
        for r in records:
            out.setdefault(r["model"], {})[r["seed"]] = r
        return out

    ref, prof = by_model(reference), by_model(profiled)
    rows = []
    for model, runs in prof.items():
        if model not in ref:
            raise ValueError(f"no default runs of {model} to pair the profile {profile!r} runs with")
        seeds = sorted(set(runs) & set(ref[model]))
        if len(seeds) < 2:
            raise ValueError(f"{model}: {len(seeds)} seed(s) in both the default and the {profile!r} runs; need >= 2")
        unpaired = len(set(runs) ^ set(ref[model]))
        for task in [t["name"] for t in runs[seeds[0]]["tasks"]]:
            a = np.array([ref[model][s]["test"][task]["auc"] for s in seeds])
            b = np.array([runs[s]["test"][task]["auc"] for s in seeds])
            diff = t_interval(b - a)  # (estimate, low, high)
            rows.append({
                "section": "profile_auc", "model": model, "profile": profile, "task": task, "seeds": len(seeds),
                "unpaired_seeds": unpaired, "default_mean": float(a.mean()), "default_std": float(a.std(ddof=1)),
                "profile_mean": float(b.mean()), "profile_std": float(b.std(ddof=1)),
                "difference": diff.estimate, "difference_low": diff.low, "difference_high": diff.high,
                "t_pvalue": paired_tests(b, a).t_pvalue,
                "default_train_seconds": float(sum(ref[model][s]["seconds"] for s in seeds)),
                "profile_train_seconds": float(sum(runs[s]["seconds"] for s in seeds)),
            })
    return rows


def profile_auc_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    headers = ["model", "profile", "task", "seeds", "default: test AUC", "profile: test AUC", "profile - default [95% CI]",
               "p (paired t)", "training seconds, default / profile (summed over seeds)"]
    cells = [[MODELS.get(r["model"], r["model"]), r["profile"], r["task"], str(r["seeds"]) + (f" ({r['unpaired_seeds']} unpaired)"
              if r["unpaired_seeds"] else ""),
              f"{r['default_mean']:.4f} ± {r['default_std']:.4f}", f"{r['profile_mean']:.4f} ± {r['profile_std']:.4f}",
              f"{r['difference']:+.4f} [{r['difference_low']:+.4f}, {r['difference_high']:+.4f}]",
              f"{r['t_pvalue']:.3g}", f"{r['default_train_seconds']:.0f} / {r['profile_train_seconds']:.0f}"]
             for r in rows]
    return markdown_table(headers, cells)


def csv_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order: sections share one CSV with a ``section`` column."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def leaderboard_row(part: str, model: str, correlation: float | None, seconds: float,
                    records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One row of the leaderboard section: one training command's (or one data generation's)
    wall-clock seconds, and what its run records (finished seeds) say: their number, their own
    seconds summed, their mean epochs run, the ensemble size and the device."""
    def distinct(values) -> str:
        return "; ".join(dict.fromkeys(str(v) for v in values))

    return {
        "section": "leaderboard", "part": part, "model": model, "correlation": correlation, "seconds": seconds,
        "seeds": len(records), "train_seconds": sum(r["seconds"] for r in records) if records else None,
        "epochs_run": float(np.mean([r["epochs_run"] for r in records])) if records else None,
        "ensemble": distinct(r["train"].get("ensemble", 1) for r in records),
        "device": distinct(r["environment"]["device"] for r in records),
    }


def leaderboard_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a table, then each part's total seconds and the devices."""
    headers = ["part", "p", "model", "seeds", "seconds", "records' seconds (summed)", "epochs run (mean)",
               "train.ensemble", "device"]
    cells = [[r["part"], "" if r["correlation"] is None else f"{r['correlation']:g}", MODELS.get(r["model"], r["model"]),
              str(r["seeds"] or ""), fmt(r["seconds"], 0), fmt(r["train_seconds"], 0), fmt(r["epochs_run"], 1),
              r["ensemble"], r["device"]] for r in rows]
    totals: dict[str, float] = {}
    for r in rows:
        key = "sweep" if r["part"].startswith("sweep") else r["part"]
        totals[key] = totals.get(key, 0.0) + r["seconds"]
    lines = [f"- {part}: {seconds:.0f} s ({seconds / 60:.1f} min)" for part, seconds in totals.items()]
    devices = "; ".join(dict.fromkeys(r["device"] for r in rows if r["device"])) or "none recorded"
    return (markdown_table(headers, cells) + "\nIn all (the sweep with its data generation):\n\n" + "\n".join(lines)
            + f"\n\nDevice: {devices}.\n")
