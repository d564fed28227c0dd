"""Hyperparameter search with equal budgets (issue 19): every model gets the same number of trials,
the same sampler and the same pruning rule over its own space (``search_spaces.yaml``, which says
how the spaces are kept fair), scored on validation only.

Library: Optuna (Akiba et al., KDD 2019) gives the sampler (TPE, Bergstra et al., NeurIPS 2011) and
the study's storage, a journal file: append-only, one line per event, so a killed search resumes
from it. Ray Tune was the other candidate; Optuna is pure Python and needs no cluster, and its
ask-and-tell interface lets this project's executors (:mod:`replication.executors`: local processes
or Ray tasks) train the trials, so a search runs wherever training runs with nothing else changing.

Determinism: a trial is a pure function of its configuration, the trial seed and its pruning
thresholds, and the search is arranged so that neither the timing of parallel trials nor an
interruption changes which trials run:

- trials run in batches of ``tune.parallel_trials``, all of a batch's configurations asked before
  any of them trains, the i-th trial's sampler seeded with (search seed, i);
- pruning (successive halving on epochs, the rule of ASHA, Li et al., MLSys 2020) compares a trial
  with the finished trials of earlier batches only, never with its batch-mates;
- a search killed and run again resumes from its journal: finished trials are kept, the trials that
  were in flight are run again with the configurations they had (their first entries stay in the
  journal as failed trials without an outcome), and no finished trial runs twice.

Test data: the test split is dropped before a search starts (:func:`without_test`), so a trial's
record has validation metrics only and nothing in a search can depend on test labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import yaml

from replication.config import ConfigError, from_mapping, require
from replication.data.processed import Processed
from replication.io import write_together
from replication.progress import log
from replication.training import TrainConfig, train_seed
from replication.training.evaluation import selection_score
from replication.training.loop import training_code_digest
from replication.training.units import Unit, unit_data

JOURNAL = "study.journal"
TRIALS = "trials.csv"
BEST = "best_full.yaml"
BEST_SMALL = "best_small.yaml"
KINDS = ("log", "uniform", "int", "choice", "units")
TRAIN_PREFIX = "train."
# Training keys a search may not change: the cap and the stopping rule are the protocol, the rest only
# decide how a run executes (replication.protocol.EXECUTION_KEYS).
FIXED_TRAIN_KEYS = ("max_epochs", "patience", "selection", "device", "seed_workers", "num_threads", "eval_batch_size",
                    "ensemble", "precision", "compile", "executor", "fused_adam")


@dataclass(frozen=True)
class TuneSettings:
    """The ``tune`` section of ``params.yaml`` (its comments give the reasons for the defaults)."""

    models: list = field(default_factory=list)
    trials: int = 24
    objective: str = "mean"
    startup_trials: int = 8
    eta: int = 3
    min_epochs: int = 2
    parallel_trials: int = 2
    trial_seed: int = 100
    search_seed: int = 0
    searches: int = 3
    small_budget: int = 8
    max_units: int = 2048

    def validate(self, where: str) -> None:
        require(self.trials >= 1, where, "trials", self.trials, "must be >= 1")
        require(self.objective in ("mean", "main_task"), where, "objective", self.objective, "use mean or main_task")
        require(self.startup_trials >= 1, where, "startup_trials", self.startup_trials, "must be >= 1")
        require(self.eta >= 2, where, "eta", self.eta, "must be >= 2 (a trial goes on if in the top 1/eta)")
        require(self.min_epochs >= 1, where, "min_epochs", self.min_epochs, "must be >= 1")
        require(self.parallel_trials >= 1, where, "parallel_trials", self.parallel_trials, "must be >= 1")
        require(self.trial_seed >= 0 and self.search_seed >= 0, where, "trial_seed/search_seed",
                (self.trial_seed, self.search_seed), "must be >= 0")
        require(self.searches >= 1, where, "searches", self.searches, "must be >= 1")
        require(1 <= self.small_budget <= self.trials, where, "small_budget", self.small_budget,
                f"must be between 1 and tune.trials ({self.trials})")
        require(self.max_units >= 16, where, "max_units", self.max_units, "must be >= 16 (the narrowest layer searched)")

    def protocol(self) -> dict[str, Any]:
        """What a tuned run's protocol holds of the search: the same for every model of one search plan."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("models", "searches", "small_budget")}


def load_settings(params: Mapping[str, Any]) -> TuneSettings:
    return from_mapping(TuneSettings, params.get("tune") or {}, "tune")


# ----------------------------------------------------------------------------------------------- spaces

def powers_of_two(low: int, high: int) -> list[int]:
    return [2 ** k for k in range(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1)]


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: ``key`` is ``train.KEY`` or a model keyword (search_spaces.yaml)."""

    key: str
    kind: str
    values: tuple
    count: tuple[int, int] = (1, 1)
    shared_by: tuple[tuple[str, int | str], ...] = ()  # units: (term, multiplier) pairs splitting the width

    def suggest(self, trial, divisor: int = 1) -> Any:
        """The trial's value (an Optuna trial; a resumed trial's fixed value comes back the same way).
        Units shared by ``divisor`` experts or columns: each gets the width divided among them."""
        if self.kind == "log":
            return trial.suggest_float(self.key, *self.values, log=True)
        if self.kind == "uniform":
            return trial.suggest_float(self.key, *self.values)
        if self.kind == "int":
            return trial.suggest_int(self.key, *self.values)
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        width = trial.suggest_categorical(f"{self.key}.width", powers_of_two(*self.values))
        layers = trial.suggest_int(f"{self.key}.layers", *self.count) if self.count[0] < self.count[1] else self.count[0]
        return [max(1, width // divisor)] * layers


def parse_dimension(key: str, spec: Any, where: str) -> Dimension:
    """A dimension of search_spaces.yaml, checked: one kind, with bounds that make sense."""
    place = f"{where}: {key}"
    if not isinstance(spec, Mapping) or not (set(spec) & set(KINDS)) or len(set(spec) & set(KINDS)) > 1:
        raise ConfigError(f"{place} = {spec!r}: give exactly one of {', '.join(KINDS)}, e.g. {{log: [1.0e-4, 1.0e-2]}}")
    kind = next(k for k in KINDS if k in spec)
    extra = sorted(set(spec) - {kind} - ({"count", "shared_by"} if kind == "units" else set()))
    if extra:
        raise ConfigError(f"{place}: unknown key(s) {', '.join(extra)} beside {kind!r}")
    values = spec[kind]
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{place}: choice needs a non-empty list of values")
        return Dimension(key, kind, tuple(values))
    if (not isinstance(values, list) or len(values) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or values[0] >= values[1]):
        raise ConfigError(f"{place}: {kind} needs [LOW, HIGH] with LOW < HIGH, got {values!r}")
    if kind in ("log", "units") and values[0] <= 0:
        raise ConfigError(f"{place}: {kind} needs LOW > 0, got {values[0]}")
    if kind in ("int", "units") and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{place}: {kind} needs integer bounds, got {values!r}")
    if kind != "units":
        return Dimension(key, kind, tuple(values))
    if not powers_of_two(*values):
        raise ConfigError(f"{place}: no power of two lies in [{values[0]}, {values[1]}]")
    count = spec.get("count", [1, 1])
    if (not isinstance(count, list) or len(count) != 2 or not all(isinstance(c, int) and c >= 1 for c in count)
            or count[0] > count[1]):
        raise ConfigError(f"{place}: count needs [FEWEST, MOST] layers, integers >= 1, got {count!r}")
    shared = spec.get("shared_by", {})
    if not isinstance(shared, Mapping) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 or m == "tasks" for m in shared.values()):
        raise ConfigError(f"{place}: shared_by needs a mapping of a keyword (or `tasks`) to a multiplier (an integer "
                          f">= 1 or `tasks`), e.g. {{n_task_experts: tasks, n_shared_experts: 1}}; got {shared!r}")
    return Dimension(key, kind, tuple(values), (count[0], count[1]), tuple(shared.items()))


def load_space(path: str | Path, model_name: str, hparams: Mapping[str, Any]) -> tuple[Dimension, ...]:
    """``model_name``'s space: search_spaces.yaml's ``common`` and its own, each key checked against
    the training keys a search may change and the model's keywords (``hparams``: its defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space file {path} does not exist (the default is search_spaces.yaml beside "
                          f"params.yaml)")
    spaces = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(spaces) - {"common", "models"}) if isinstance(spaces, Mapping) else ["(not a mapping)"]
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; use common and models")
    models = spaces.get("models") or {}
    if model_name not in models:
        raise ConfigError(f"{path} has no search space for {model_name!r}; add models.{model_name} (spaces exist for "
                          f"{', '.join(models) or 'no model'})")
    tunable = {f.name for f in dataclasses.fields(TrainConfig)} - set(FIXED_TRAIN_KEYS)
    dims = []
    for where, entries in ((f"{path} common", spaces.get("common") or {}), (f"{path} models.{model_name}",
                                                                            models[model_name] or {})):
        for key, spec in entries.items():
            if key.startswith(TRAIN_PREFIX):
                if key[len(TRAIN_PREFIX):] not in tunable:
                    raise ConfigError(f"{where}: {key} cannot be searched; the training keys a search may change "
                                      f"are {', '.join(sorted(tunable))}")
            elif key not in hparams:
                raise ConfigError(f"{where}: {key} is not a keyword of {model_name}; its keywords are "
                                  f"{', '.join(sorted(hparams))}")
            dims.append(parse_dimension(key, spec, where))
            unknown_terms = sorted(t for t, _ in dims[-1].shared_by if t != "tasks" and t not in hparams)
            if unknown_terms:
                raise ConfigError(f"{where}: {key} is shared_by {', '.join(unknown_terms)}, not keywords of "
                                  f"{model_name} (or `tasks`)")
    keys = [d.key for d in dims]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{path}: {model_name} searches {sorted({k for k in keys if keys.count(k) > 1})} twice "
                          f"(in common and in its own space); keep one")
    return tuple(dims)


def capped(dims: Sequence[Dimension], max_units: int) -> tuple[Dimension, ...]:
    """``dims`` with every layer's width (a ``units`` dimension: a layer's total, before it is divided
    among experts or columns) at most ``max_units``: one ceiling for every model (``tune.max_units``)."""
    too_narrow = [d.key for d in dims if d.kind == "units" and d.values[0] > max_units]
    if too_narrow:
        raise ConfigError(f"tune.max_units = {max_units} is below the narrowest width of {', '.join(too_narrow)}; "
                          f"raise it or lower those dimensions' LOW")
    return tuple(dataclasses.replace(d, values=(d.values[0], min(d.values[1], max_units))) if d.kind == "units" else d
                 for d in dims)


def configuration(dims: Sequence[Dimension], trial, hparams: Mapping[str, Any], n_tasks: int) -> dict[str, dict[str, Any]]:
    """A trial's values as ``{"train": {...}, "model": {...}}``. Shared units come last: their width
    is divided by the experts or columns they are shared by, counted from the trial's values (or
    ``hparams``' where a count is not searched) and ``n_tasks``."""
    config: dict[str, dict[str, Any]] = {"train": {}, "model": {}}
    for dim in sorted(dims, key=lambda d: bool(d.shared_by)):
        section, key = ("train", dim.key[len(TRAIN_PREFIX):]) if dim.key.startswith(TRAIN_PREFIX) else ("model", dim.key)
        values = {**hparams, **config["model"], "tasks": n_tasks}
        divisor = sum(values[term] * (n_tasks if m == "tasks" else m) for term, m in dim.shared_by) or 1
        config[section][key] = dim.suggest(trial, divisor)
    return config


def apply_configuration(cfg, hparams: Mapping[str, Any], config: Mapping[str, Mapping[str, Any]]):
    """(TrainConfig, model hyperparameters) with a configuration's values set (and checked)."""
    merged = from_mapping(TrainConfig, {**dataclasses.asdict(cfg), **config["train"]}, "tuned train")
    return merged, {**hparams, **config["model"]}


# ---------------------------------------------------------------------------------------------- pruning

def rung_epochs(settings: TuneSettings, max_epochs: int) -> list[int]:
    """The epochs a trial may be stopped at: min_epochs * eta^k below the epoch cap."""
    rungs, epoch = [], settings.min_epochs
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= settings.eta
    return rungs


def thresholds(earlier: Sequence[tuple[Sequence[float], bool]], rungs: Sequence[int], eta: int) -> dict[int, float]:
    """The score a trial needs at each rung epoch to go on (ASHA's rule): the ``floor(n / eta)``-th best
    of the best-so-far scores at that epoch of the ``n`` earlier trials that got there (a trial that
    ended on its own before it, by early stopping, counts with its final score; a pruned one does not).
    ``earlier``: (best-so-far score per epoch, pruned) per finished trial. No rung is set below eta trials."""
    rule = {}
    for epoch in rungs:
        scores = sorted((curve[min(epoch, len(curve)) - 1] for curve, pruned in earlier
                         if curve and (len(curve) >= epoch or not pruned)), reverse=True)
        if len(scores) >= eta:
            rule[epoch] = scores[len(scores) // eta - 1]
    return rule


def objective_tasks(tasks, main_task: str, objective: str):
    return tuple(t for t in tasks if t.name == main_task) if objective == "main_task" else tuple(tasks)


def running_best(history: Sequence[Mapping[str, Any]], tasks) -> list[float]:
    """The best validation score up to each epoch (:func:`replication.training.evaluation.selection_score` over ``tasks``)."""
    best, curve = -math.inf, []
    for entry in history:
        best = max(best, selection_score(entry["validation"], tasks))
        curve.append(best)
    return curve


def without_test(data: Processed) -> Processed:
    """The data a search sees: training and validation splits only."""
    return dataclasses.replace(data, splits={k: v for k, v in data.splits.items() if k != "test"})


# ----------------------------------------------------------------------------------------------- trials

@dataclass(frozen=True)
class TrialUnit(Unit):
    """One trial as a unit of work for :mod:`replication.executors`: one seed of one configuration,
    stopped at a rung epoch whose threshold it misses (``rule``: epoch -> the score needed there)."""

    rule: Mapping[int, float]
    objective: str

    def run(self, data: Processed | None, show_epochs: bool = False) -> list[dict[str, Any]]:
        data = unit_data(data)
        tasks = objective_tasks(data.tasks, data.schema["main_task"], self.objective)
        best, pruned = [-math.inf], []

        def prune(epoch: int, metrics: Mapping[str, Any]) -> bool:
            best[0] = max(best[0], selection_score(metrics, tasks))
            if epoch in self.rule and best[0] < self.rule[epoch]:
                pruned.append(epoch)
            return bool(pruned)

        record, _ = train_seed(self.model_name, self.hparams, data, self.cfg, self.seeds[0], self.device,
                               show_epochs, on_epoch=prune)
        curve = running_best(record["history"], tasks)
        if record["status"] != "ok":
            outcome, value = "diverged", None
        else:
            outcome = "pruned" if pruned else "complete"
            value = None if pruned else selection_score(record["validation"], tasks)
        return [{"outcome": outcome, "value": value, "curve": curve, "epochs": record["epochs_run"],
                 "seconds": record["seconds"]}]


def sampler_seed(search_seed: int, index: int) -> int:
    return int(np.random.SeedSequence([search_seed, index]).generate_state(1)[0])


def study_key(model_name: str, hparams: Mapping[str, Any], cfg, dims: Sequence[Dimension], settings: TuneSettings,
              data: Processed) -> str:
    """What a study's trials depend on; a journal made under another key is started over."""
    key = {"model": model_name, "hparams": dict(hparams), "train": dataclasses.asdict(cfg),
           "space": [dataclasses.asdict(d) for d in dims], "settings": settings.protocol(),
           "data": data.protocol_hash, "code": training_code_digest(model_name, cfg.weighting), "torch": torch.__version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_search(model_name: str, hparams: Mapping[str, Any], cfg, data: Processed, dims: Sequence[Dimension],
               settings: TuneSettings, search: int, folder: Path, executor, device: torch.device) -> list[dict[str, Any]]:
    """Search ``search`` (0, 1, ...) of ``model_name``: ``settings.trials`` finished trials in the
    journal under ``folder``, resumed where a killed search stopped. Returns one row per trial."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    key = study_key(model_name, hparams, cfg, dims, settings, data)
    name = f"{model_name}-search{search}-{key}"
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    seed = settings.search_seed + search
    lost = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if "index" in trial.user_attrs:
            lost[trial.user_attrs["index"]] = trial.params
    if lost:
        log(f"{model_name} search {search}: resuming; trial(s) {', '.join(str(i + 1) for i in sorted(lost))} were "
            f"in flight when the search stopped and run again")
    done = {t.user_attrs["index"]: t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("outcome") in ("complete", "pruned", "diverged")}
    rungs = rung_epochs(settings, cfg.max_epochs)
    best = max((t.value for t in done.values() if t.value is not None), default=-math.inf)
    while len(done) < settings.trials:
        first = len(done) // settings.parallel_trials * settings.parallel_trials
        batch = [i for i in range(first, min(first + settings.parallel_trials, settings.trials)) if i not in done]
        earlier = [(_curve(done[i]), done[i].user_attrs["outcome"] != "complete") for i in range(first)]
        rule = thresholds(earlier, rungs, settings.eta)
        asked, units = [], []
        for index in batch:
            if index in lost:
                study.enqueue_trial(lost[index], skip_if_exists=False)
            study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, index),
                                                       n_startup_trials=settings.startup_trials)
            trial = study.ask()
            trial.set_user_attr("index", index)
            config = configuration(dims, trial, hparams, len(data.tasks))
            trial_cfg, trial_hparams = apply_configuration(cfg, hparams, config)
            asked.append((index, trial, config))
            units.append(TrialUnit(model_name, trial_hparams, trial_cfg, (settings.trial_seed,), device, folder, rule,
                                   settings.objective))
        started = time.perf_counter()
        results = executor.run(units, data, done=lambda unit: None)
        for (index, trial, config), [result] in zip(asked, results):
            for epoch, score in enumerate(result["curve"], start=1):
                trial.report(score, epoch)
            for attr in ("outcome", "epochs", "seconds"):
                trial.set_user_attr(attr, result[attr])
            trial.set_user_attr("config", config)
            if result["outcome"] == "complete":
                study.tell(trial, result["value"])
                best = max(best, result["value"])
            else:
                study.tell(trial, state=TrialState.PRUNED)
            done[index] = study.get_trials(deepcopy=False)[trial.number]
            value = "-" if result["value"] is None else f"{result['value']:.5f}"
            log(f"{model_name} search {search}: trial {index + 1} of {settings.trials}: {result['outcome']} after "
                f"{result['epochs']} epoch(s), validation {value} (best so far {best:.5f}); {result['seconds']:.0f} s "
                f"training, batch {time.perf_counter() - started:.0f} s")
    return [_row(search, index, done[index]) for index in sorted(done)]


def _curve(trial) -> list[float]:
    values = trial.intermediate_values
    return [values[e] for e in sorted(values)]


def _row(search: int, index: int, trial) -> dict[str, Any]:
    attrs = trial.user_attrs
    flat = {f"{section}.{k}": json.dumps(v) if isinstance(v, list) else v
            for section, values in attrs["config"].items() for k, v in values.items()}
    return {"search": search, "trial": index, "outcome": attrs["outcome"],
            "value": trial.value if attrs["outcome"] == "complete" else None,
            "best_so_far": max(_curve(trial), default=None), "epochs": attrs["epochs"], "seconds": attrs["seconds"],
            **flat, "config": json.dumps(attrs["config"], sort_keys=True)}


# ------------------------------------------------------------------------------------ a model's searches

def tune_model(model_name: str, hparams: Mapping[str, Any], cfg: TrainConfig, data, settings: TuneSettings,
               space: Path, out: Path) -> pd.DataFrame:
    """Every search of ``model_name`` (``settings.searches``, each of ``settings.trials`` trials) into
    ``out``: the study journal, ``trials.csv`` (one row per trial of every search), ``best_full.yaml`` (the
    best configuration of search 0 after every trial) and ``best_small.yaml`` (after
    ``settings.small_budget`` trials). The tables are written together once every search has finished."""
    from models.registry import model_hparams
    from replication.executors import make_executor
    from replication.runfolder import run_folder_lock

    if not isinstance(data, Processed):
        raise ConfigError(f"tune searches on one data set; {data.directory} gives each seed its own replicate. Tune on "
                          f"one replicate's folder (e.g. {data.directory}/seed_0)")
    hparams = {**model_hparams(model_name), **hparams}
    dims = capped(load_space(space, model_name, hparams), settings.max_units)
    data = without_test(data)
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    log(f"{model_name}: {settings.searches} search(es) of {settings.trials} trials over {len(dims)} dimensions, "
        f"{settings.parallel_trials} at a time, validation only ({settings.objective} objective)")
    with run_folder_lock(out), make_executor(cfg) as executor:
        device = executor.device(cfg.device)
        _drop_stale_studies(out, model_name, study_key(model_name, hparams, cfg, dims, settings, data))
        rows = [row for search in range(settings.searches)
                for row in run_search(model_name, hparams, cfg, data, dims, settings, search, out, executor, device)]
    table = pd.DataFrame(rows)
    first = table[table["search"] == 0]
    best = best_configuration(model_name, first, settings, settings.trials)
    small = best_configuration(model_name, first[first["trial"] < settings.small_budget], settings,
                               settings.small_budget)
    write_together({out / TRIALS: table.to_csv(index=False), out / BEST: _yaml(best), out / BEST_SMALL: _yaml(small)})
    log(f"{model_name}: best of search 0 is trial {best['trial'] + 1} (validation {best['validation']:.5f}); "
        f"after {settings.small_budget} trials, trial {small['trial'] + 1}; written to {out}")
    return table


def _drop_stale_studies(folder: Path, model_name: str, key: str) -> None:
    """Delete the journal's studies of ``model_name`` made under another study key (other settings,
    space, data or code): a changed search starts over instead of mixing old trials in."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not (folder / JOURNAL).is_file():
        return
    storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name.startswith(f"{model_name}-search") and not summary.study_name.endswith(key):
            log(f"{model_name}: {folder / JOURNAL} holds a search made under other settings ({summary.study_name}); "
                f"starting over")
            optuna.delete_study(study_name=summary.study_name, storage=storage)


def best_configuration(model_name: str, rows: pd.DataFrame, settings: TuneSettings, budget: int) -> dict[str, Any]:
    """The best complete trial of ``rows`` (one search; ties: the earlier trial) as a tuned configuration."""
    complete = rows[rows["outcome"] == "complete"].sort_values(["value", "trial"], ascending=[False, True])
    if complete.empty:
        raise ConfigError(f"{model_name}: none of the first {budget} trials completed (all pruned or diverged); "
                          f"raise tune.small_budget or tune.min_epochs")
    row = complete.iloc[0]
    config = json.loads(row["config"])
    return {"model": model_name, "search": int(row["search"]), "trial": int(row["trial"]),
            "validation": float(row["value"]), "search_protocol": {**settings.protocol(), "trials": budget},
            "train": config["train"], "hparams": config["model"]}


def _yaml(doc: Mapping[str, Any]) -> str:
    head = (f"# {doc['model']}'s tuned configuration: trial {doc['trial'] + 1} of search {doc['search']}, the best on "
            f"validation of its first {doc['search_protocol']['trials']} trials.\n"
            f"# Written by `python -m replication tune`; `train --tuned FILE` trains it.\n")
    return head + yaml.safe_dump(dict(doc), sort_keys=False)


def read_tuned(path: Path, model_name: str, cfg: TrainConfig,
               hparams: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any], dict[str, Any]]:
    """A tuned configuration (:func:`best_configuration`, as written by ``tune``) set over ``cfg`` and
    ``hparams``, and the ``tuning`` field of its runs' records (what :mod:`replication.protocol` reads)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--tuned {path} does not exist; run `python -m replication tune` first (make reproduce-tuned)")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = sorted({"model", "search", "trial", "validation", "search_protocol", "train", "hparams"} - set(doc))
    if missing:
        raise ConfigError(f"--tuned {path} lacks {', '.join(missing)}; it is not a file `tune` wrote")
    if doc["model"] != model_name:
        raise ConfigError(f"--tuned {path} is {doc['model']}'s tuned configuration, not {model_name}'s")
    tuned_cfg, tuned_hparams = apply_configuration(cfg, hparams, {"train": doc["train"], "model": doc["hparams"]})
    fields = {"search": doc["search_protocol"], "train_keys": sorted(doc["train"]), "search_index": doc["search"],
              "trial": doc["trial"], "validation": doc["validation"]}
    return tuned_cfg, tuned_hparams, fields


# -------------------------------------------------------------------------------------- budget figure

def budget_curves(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Best complete validation score so far against trials used, per model and search."""
    rows = []
    for model, table in tables.items():
        for search, group in table.sort_values("trial").groupby("search"):
            best = -math.inf
            for _, row in group.iterrows():
                if row["outcome"] == "complete":
                    best = max(best, row["value"])
                rows.append({"model": model, "search": int(search), "trials": int(row["trial"]) + 1,
                             "best": best if math.isfinite(best) else None,
                             "seconds": float(group[group["trial"] <= row["trial"]]["seconds"].sum())})
    return pd.DataFrame(rows)


def draw_budget(curves: pd.DataFrame, small_budget: int):
    """The budget-sensitivity figure: per model, the median over searches of the best validation score
    so far against trials used, with the range over searches; the small budget marked."""
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(curves["model"]))
    figure = Figure(figsize=(3.2 * len(models), 3.0), layout="constrained")
    axes = figure.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        pivot = curves[curves["model"] == model].pivot(index="trials", columns="search", values="best")
        ax.fill_between(pivot.index, pivot.min(axis=1), pivot.max(axis=1), alpha=0.25, linewidth=0)
        ax.plot(pivot.index, pivot.median(axis=1), marker=".")
        ax.axvline(small_budget, color="grey", linestyle=":", linewidth=1)
        ax.set_title(model)
        ax.set_xlabel("trials used")
    axes[0].set_ylabel("best validation score so far\n(median, range over searches)")
    return figure


# ---------------------------------------------------------------------------------------------- report

def load_trials(tuning: Path) -> dict[str, pd.DataFrame]:
    """Every model's ``trials.csv`` under ``tuning`` (one folder per model), by model name."""
    found = {path.parent.name: pd.read_csv(path) for path in sorted(Path(tuning).glob(f"*/{TRIALS}"))}
    if not found:
        raise ConfigError(f"no {TRIALS} under {tuning}/<model>/; run `python -m replication tune` first "
                          f"(make reproduce-tuned)")
    return found


def cost_table(tables: Mapping[str, pd.DataFrame], settings: TuneSettings) -> pd.DataFrame:
    """Per model: trials by outcome, epochs and training seconds (all searches), and the chosen
    configurations' validation scores."""
    rows = []
    for model, table in tables.items():
        first = table[table["search"] == 0]
        complete = first[first["outcome"] == "complete"]
        small = complete[complete["trial"] < settings.small_budget]
        rows.append({"model": model, "searches": table["search"].nunique(), "trials": len(table),
                     **{outcome: int((table["outcome"] == outcome).sum()) for outcome in ("complete", "pruned", "diverged")},
                     "epochs": int(table["epochs"].sum()), "training_seconds": float(table["seconds"].sum()),
                     "median_seconds_per_trial": float(table["seconds"].median()),
                     "best_validation": float(complete["value"].max()),
                     f"best_validation_after_{settings.small_budget}": float(small["value"].max())})
    return pd.DataFrame(rows)


def write_tuning_report(tuning: Path, settings: TuneSettings, out: Path) -> None:
    """``OUT/budget_sensitivity.{png,pdf,csv}`` and ``OUT/TUNING.md`` (the searches' cost and the
    chosen configurations), from the trials tables under ``tuning``."""
    from replication.report.writer import figure_bytes

    tables = load_trials(tuning)
    curves = budget_curves(tables)
    costs = cost_table(tables, settings)
    figure = draw_budget(curves, settings.small_budget)
    out = Path(out)
    chosen = []
    for model in tables:
        for name in (BEST, BEST_SMALL):
            doc = yaml.safe_load((Path(tuning) / model / name).read_text(encoding="utf-8"))
            chosen.append(f"| {model} | {doc['search_protocol']['trials']} | {doc['trial'] + 1} | "
                          f"{doc['validation']:.5f} | `{json.dumps(doc['train'], sort_keys=True)}` | "
                          f"`{json.dumps(doc['hparams'], sort_keys=True)}` |")
    text = "\n".join([
        "# Tuned baselines: the searches", "",
        "Generated by `python -m replication tuning-report` from the trials tables of `python -m replication tune` "
        "(`results/tuning/`); do not edit. Every model had the same budget and pruning rule (`params.yaml` `tune`) "
        "over its own space (`search_spaces.yaml`, which says how the spaces are kept fair); trials read validation "
        "only. The tuned leaderboard, with the claims judged on untuned and tuned runs side by side, is "
        "`results/leaderboard_tuned.md`.", "",
        f"Search plan: {settings.trials} trials per search, {settings.searches} independent "
        f"search{'es' if settings.searches > 1 else ''} per model "
        f"(sampler seeds {settings.search_seed}..{settings.search_seed + settings.searches - 1}), "
        f"{settings.startup_trials} random trials first, then TPE; successive halving with eta {settings.eta} from "
        f"epoch {settings.min_epochs}; {settings.parallel_trials} trials at a time; each trial trains seed "
        f"{settings.trial_seed}; objective: {settings.objective}.", "",
        "## Budget sensitivity", "",
        "![Best validation score so far against trials used](budget_sensitivity.png)", "",
        f"Median over the searches of the best complete trial's validation score after each trial, with the "
        f"range over searches; the dotted line is the small budget ({settings.small_budget} trials) the claims "
        f"are also judged at. Data: `budget_sensitivity.csv`.", "",
        "## What the searches cost", "",
        "Training seconds summed over every trial of every search (one process each; the wall clock is about this "
        "divided by the trials run at once).", "",
        costs.to_markdown(index=False, floatfmt=".5g"), "",
        "## The chosen configurations (search 0)", "",
        "| model | budget | trial | validation | training | model |", "|---|---|---|---|---|---|", *chosen, "",
    ])
    write_together({out / "budget_sensitivity.png": figure_bytes(figure, "png"),
                    out / "budget_sensitivity.pdf": figure_bytes(figure, "pdf"),
                    out / "budget_sensitivity.csv": curves.to_csv(index=False, float_format="%.6g"),
                    out / "TUNING.md": text})
