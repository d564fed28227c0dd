"""``python -m replication <command>``: the one command-line entry; dvc.yaml stages call only this."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import functools
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from replication.config import ConfigError, apply_profile, check_sections, from_mapping, load_params, section


def _download(args: argparse.Namespace) -> None:
    from replication.data.download import download_census

    download_census(args.out, mirror=args.mirror, timeout=args.timeout)


def _prepare(args: argparse.Namespace) -> None:
    from replication.data.prepare import prepare
    from replication.data.spec import builtin_specs, load_spec
    from replication.progress import log

    if (args.dataset is None) == (args.spec is None):
        raise ConfigError("prepare: name a built-in data set (`prepare census`) or a spec file (`prepare --spec FILE`), "
                          "one of the two")
    spec = load_spec(args.spec if args.spec is not None else builtin_specs()[args.dataset])
    schema = prepare(spec, args.raw, args.out, task_group=args.task_group, split_seed=args.split_seed,
                     numeric_buckets=args.numeric_buckets, name=args.name)
    rows = ", ".join(f"{name} {info['rows']}" for name, info in schema["splits"].items())
    log(f"prepared {schema['dataset']} {schema['task_group']} in {args.out}: {rows}")


def _synth(args: argparse.Namespace) -> None:
    from replication.data.synthetic import SyntheticConfig, generate_replicates
    from replication.progress import log
    from replication.training import parse_seeds

    cfg = from_mapping(SyntheticConfig, {
        "correlation": args.correlation, "rows": args.n, "dim": args.dim, "scale": args.scale,
        "n_sines": args.n_sines, "noise_std": args.noise_std, "seed": args.seed,
        "validation_fraction": args.validation_fraction, "test_fraction": args.test_fraction,
    }, "synth")
    written = generate_replicates(cfg, parse_seeds(args.seeds), args.data_seeds, Path(args.out))
    if args.data_seeds == "per_seed":
        log(f"synthetic data in {args.out}: one replicate per training seed ({args.seeds}), "
            f"set {written['data_hash'][:12]}")
        return
    rows = ", ".join(f"{name} {info['rows']}" for name, info in written["splits"].items())
    log(f"synthetic data in {args.out}: {rows}; cos(w1, w2) = {written['generator']['cos_w1_w2']:.6f}, "
        f"label correlation (train) {written['label_correlation_train']:.4f}")


def apply_overrides(params: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=VALUE`` overrides (VALUE parsed as YAML) to a copy of ``params``."""
    params = yaml.safe_load(yaml.safe_dump(params))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: use --set SECTION.KEY=VALUE, e.g. --set train.max_epochs=5")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(value)
    return params


def _training_setup(args: argparse.Namespace, model: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """params.yaml with ``--profile`` and ``--set`` applied, its train section as a TrainConfig, and
    ``model``'s hyperparameters (model_common, then the model's own section)."""
    from replication.progress import log
    from replication.provenance import cpu_flags, slow_bf16_warning
    from replication.training import TrainConfig

    params = load_params(args.params)
    if args.profile:
        params = apply_profile(params, args.profile)
    params = apply_overrides(params, args.set)
    check_sections(params, f"{args.params} (with --profile and --set applied)")
    cfg = from_mapping(TrainConfig, section(params, "train"), "train")
    warning = slow_bf16_warning(cfg.precision, cfg.device, cpu_flags())
    if warning:
        log(warning)
    hparams = {**section(params, "model_common"), **(section(params, "models").get(model) or {})}
    return params, cfg, hparams


def _train(args: argparse.Namespace) -> None:
    from models.registry import ModelSpec, model_spec
    from replication.byom import model_source
    from replication.data.processed import load_data
    from replication.data.validate import check_processed
    from replication.runner import train_model
    from replication.training import parse_seeds
    from replication.tuning import read_tuned

    # A model of one's own (FILE.py:Class) is recorded under its stable name, as `compare` does.
    model = model_spec(args.model) if ":" in args.model else args.model
    params, cfg, hparams = _training_setup(args, model)
    if args.executor is not None:
        cfg = dataclasses.replace(cfg, executor=args.executor)
    fields: dict[str, Any] = {}
    if isinstance(model, ModelSpec):
        fields["model_source"] = model_source(model)  # the code as imported
    if args.tuned is not None:
        cfg, hparams, fields["tuning"] = read_tuned(args.tuned, str(model), cfg, hparams)
    seeds = parse_seeds(args.seeds if args.seeds is not None else str(params.get("seeds", "0-9")))
    if args.reuse is not None and not args.reuse.is_dir():
        raise ConfigError(f"--reuse {args.reuse} is not a folder; name a run folder of this code (or leave --reuse out)")
    check_processed(args.data)
    train_model(model, hparams, load_data(args.data), cfg, seeds, Path(args.out),
                checkpoints=None if args.no_checkpoints else args.checkpoints,
                checkpoint_seconds=args.checkpoint_seconds, record_fields=fields, reuse=args.reuse)


def _tune(args: argparse.Namespace) -> None:
    from replication.data.processed import load_data
    from replication.data.validate import check_processed
    from replication.tuning import load_settings, tune_model

    params, cfg, hparams = _training_setup(args, args.model)
    if args.executor is not None:
        cfg = dataclasses.replace(cfg, executor=args.executor)
    settings = load_settings(params)
    check_processed(args.data)
    tune_model(args.model, hparams, cfg, load_data(args.data), settings, Path(args.space), Path(args.out))


def _compare(args: argparse.Namespace) -> None:
    from models.registry import model_spec
    from replication.byom import compare_model
    from replication.training import parse_seeds

    name = model_spec(args.model)
    if args.weighting is not None:  # the entry's loss weighting; not part of the protocol (docs/weighting.md)
        args.set = [*args.set, f"train.weighting={args.weighting}"]
    params, cfg, hparams = _training_setup(args, name)
    seeds = parse_seeds(args.seeds if args.seeds is not None else str(section(params, "seeds")))
    result = compare_model(name, Path(args.data), cfg, hparams, seeds, runs=args.runs, out=args.out,
                           snapshot=args.snapshot)
    print(result.markdown, end="")


def _same_runs(args: argparse.Namespace) -> None:
    from replication.progress import log
    from replication.records import run_differences

    differences = run_differences(args.runs, args.other)
    if differences:
        shown = "; ".join(differences[:20]) + (f"; and {len(differences) - 20} more" if len(differences) > 20 else "")
        raise ConfigError(f"{args.runs} and {args.other} differ in {len(differences)} place(s): {shown}")
    log(f"{args.runs} and {args.other} hold the same runs: every record (timings and places aside) and every "
        f"test prediction equal")


def _snapshot(args: argparse.Namespace) -> None:
    from replication.progress import log
    from replication.snapshot import check_snapshot, write_snapshot

    if args.check:
        check_snapshot(args.out, args.runs)
        log(f"snapshot {args.out} matches the runs under {args.runs}")
        return
    count = write_snapshot(args.runs, args.out)
    log(f"wrote {args.out}: {count} run records of {args.runs}, without predictions")


def _one_writer(command):
    """Run a command that writes tables at ``--out`` under its output lock
    (:func:`replication.io.output_lock`): a second writer of the same output is refused."""
    @functools.wraps(command)
    def locked(args: argparse.Namespace) -> None:
        from replication.io import output_lock

        with output_lock(args.out):
            command(args)
    return locked


@_one_writer
def _tuning_report(args: argparse.Namespace) -> None:
    from replication.tuning import load_settings, write_tuning_report

    write_tuning_report(args.tuning, load_settings(load_params(args.params)), Path(args.out))


@_one_writer
def _leaderboard(args: argparse.Namespace) -> None:
    from replication.claims import load_settings
    from replication.leaderboard import write_leaderboard

    write_leaderboard(_run_folders(args), Path(args.out), reference=args.reference,
                      settings=load_settings(args.params))


def _run_folders(args: argparse.Namespace) -> list[Path]:
    """The folders of ``--runs``, then every sub-folder of each ``--runs-each`` folder."""
    runs = list(args.runs)
    for parent in args.runs_each:
        folders = sorted(d for d in parent.iterdir() if d.is_dir()) if parent.is_dir() else []
        if not folders:
            raise ConfigError(f"--runs-each {parent}: no sub-folders of runs under it; train the runs first (dvc repro)")
        runs += folders
    if not runs:
        raise ConfigError(f"{args.command} needs run folders: give --runs DIR or --runs-each DIR")
    return runs


def _weighting_table(args: argparse.Namespace) -> None:
    from replication.weighting_table import write_weighting_table

    write_weighting_table(_run_folders(args), Path(args.out), reference=args.reference)


def _env(args: argparse.Namespace) -> None:
    import json

    from replication.provenance import environment
    from replication.training import resolve_device

    print(json.dumps(environment(str(resolve_device(args.device))), indent=2, sort_keys=True))


@_one_writer
def _aggregate(args: argparse.Namespace) -> None:
    from replication.aggregate import aggregate

    aggregate(args.runs, Path(args.out), reference=args.reference)


@_one_writer
def _stats(args: argparse.Namespace) -> None:
    from replication.aggregate import write_stats

    write_stats(args.runs, Path(args.out), references=args.reference or ["single_task"])


@_one_writer
def _experts(args: argparse.Namespace) -> None:
    from replication.experts import write_experts

    write_experts(args.runs, Path(args.out))


@_one_writer
def _sweep(args: argparse.Namespace) -> None:
    from replication.claims import load_settings
    from replication.sweep import write_sweep

    write_sweep(args.runs, Path(args.out), reference=args.reference, settings=load_settings(args.params))


@_one_writer
def _figures(args: argparse.Namespace) -> None:
    from replication.claims import load_settings
    from replication.report import write_report

    write_report(Path(args.out), census=args.census, census_stats=args.census_stats, experts=args.experts,
                 sweep=args.sweep, runs=args.runs, synthetic_runs=args.synthetic_runs, group2_runs=args.group2_runs,
                 synthetic_experts=args.synthetic_experts, synthetic_data=args.synthetic_data,
                 link_from=args.link_from, link=args.link, settings=load_settings(args.params))


def _profile_overrides(args: argparse.Namespace) -> None:
    from replication.config import profile_overrides

    print(" ".join(f"-S {item}" for item in profile_overrides(load_params(args.params), args.profile)))


def _models(args: argparse.Namespace) -> None:
    from models import list_models
    from models.registry import model_hparams, model_summary

    width = max(map(len, list_models()))
    for name in list_models():
        print(f"{name:<{width}}  {model_summary(name)}")
        if args.hparams:
            print(" " * (width + 2) + ", ".join(f"{k}={v!r}" for k, v in model_hparams(name).items()))


def _add_parameter_options(p: argparse.ArgumentParser) -> None:
    """--params, --profile and --set: where a training command reads its parameters."""
    p.add_argument("--params", default="params.yaml", help="parameter file (sections seeds, train, model_common, models)")
    p.add_argument("--profile", default=None,
                   help="merge params.yaml's profiles.PROFILE over its sections first (e.g. synthetic)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter, e.g. --set train.max_epochs=5 (repeatable)")


def _add_verdict_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=None,
                   help="parameter file whose `verdicts` section judges the claims (default: params.yaml if present)")


def _add_table_options(p: argparse.ArgumentParser, runs_help: str, reference_help: str,
                       runs_required: bool = True) -> None:
    """--runs (repeatable), --out and --reference: the options of a command that tables run records."""
    p.add_argument("--runs", required=runs_required, action="append", default=[], type=Path, help=runs_help)
    p.add_argument("--out", required=True, help="output path without extension (.csv and .md are written)")
    p.add_argument("--reference", default="single_task", help=reference_help)


def _add_runs_each(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--runs-each", action="append", default=[], type=Path, help=help_text + " (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from replication.data.spec import builtin_specs

    parser = argparse.ArgumentParser(prog="python -m replication", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("download", help="download and verify a raw data set")
    p.add_argument("dataset", choices=["census"])
    p.add_argument("--out", required=True, help="folder for the raw files")
    p.add_argument("--mirror", default=None,
                   help="folder or URL tried first (default: $REPLICATION_DATA_MIRROR)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per network request")
    p.set_defaults(func=_download)

    p = commands.add_parser("prepare", help="turn raw files into processed arrays and schema.json, as a data spec says")
    p.add_argument("dataset", nargs="?", choices=sorted(builtin_specs()), default=None,
                   help="a built-in data set: its spec is replication/data/specs/DATASET.yaml")
    p.add_argument("--spec", type=Path, default=None,
                   help="a data spec (YAML) of your own: files, features, tasks, splits (replication/data/spec.py)")
    p.add_argument("--raw", type=Path, default=None,
                   help="folder holding the raw files the spec names (default: the spec's own folder)")
    p.add_argument("--out", required=True, help="folder for the processed arrays (replaced whole when complete)")
    p.add_argument("--task-group", default=None, help="a task group of the spec (default: its first; census: "
                                                      "income-marital or education-marital)")
    p.add_argument("--split-seed", type=int, default=None, help="seed of the seeded splits (default: the spec's)")
    p.add_argument("--numeric-buckets", type=int, default=None,
                   help="also embed each numeric column's training-quantile bucket (0 = off; default: the spec's)")
    p.add_argument("--name", default=None, help="the data set's name in schema.json and run records (default: the "
                                                "spec's), e.g. aliexpress-NL for one country")
    p.set_defaults(func=_prepare)

    p = commands.add_parser("synth", help="two regression tasks of controlled correlation (MMoE paper's generator)")
    p.add_argument("--correlation", type=float, required=True, help="p = cos(w1, w2), in [-1, 1]")
    p.add_argument("--n", type=int, default=100_000, help="rows in all (train + validation + test)")
    p.add_argument("--dim", type=int, default=100, help="input dimension d")
    p.add_argument("--scale", type=float, default=1.0, help="c, the norm of w1 and w2")
    p.add_argument("--n-sines", type=int, default=10, help="m, the number of sine terms")
    p.add_argument("--noise-std", type=float, default=0.1,
                   help="std of each label's noise (0.1: the papers' N(0, 0.01) read as a variance)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole data set (weights, sines, rows)")
    p.add_argument("--data-seeds", choices=["shared", "per_seed"], default="shared",
                   help="shared: one data set for every training seed; per_seed: one replicate per training seed "
                        "(--seeds), each its own draw of everything (params.yaml synthetic.data_seeds)")
    p.add_argument("--seeds", default="0-9", help="the training seeds that get a replicate (with --data-seeds per_seed)")
    p.add_argument("--validation-fraction", type=float, default=0.1, help="share of rows for validation")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share of rows for test")
    p.add_argument("--out", required=True, help="folder for the processed arrays")
    p.set_defaults(func=_synth)

    p = commands.add_parser("train", help="train one model over several seeds")
    p.add_argument("--data", required=True, help="processed data folder, or a replicate set (one per seed)")
    p.add_argument("--model", required=True, help="registered model name (see `models`), or PATH.py:ClassName")
    p.add_argument("--seeds", default=None, help="seeds, e.g. 0-9 or 0,2,5-7 (default: params.yaml's seeds)")
    p.add_argument("--out", required=True, help="folder for the run records and predictions")
    p.add_argument("--checkpoints", type=Path, default=Path(".checkpoints"),
                   help="folder for unfinished seeds' checkpoints: rerunning an interrupted command resumes from "
                        "them (default: .checkpoints; emptied when every seed is written)")
    p.add_argument("--checkpoint-seconds", type=float, default=30.0,
                   help="save a seed's training state at most this often (0: after every epoch)")
    p.add_argument("--no-checkpoints", action="store_true", help="save no checkpoints (an interrupted seed restarts)")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where the seeds train: local (this machine's processes) or ray (one Ray task per seed, on the "
                        "cluster at $RAY_ADDRESS, else on a Ray instance started here); default: params.yaml's "
                        "train.executor")
    p.add_argument("--tuned", type=Path, default=None,
                   help="a tuned configuration (best.yaml of `tune`) set over params.yaml; its records name the search")
    p.add_argument("--reuse", type=Path, default=None, metavar="RUNS",
                   help="a run folder of this code (another budget's tuned runs, say): each seed it holds under the "
                        "same configuration (how the configuration was chosen aside) is copied, not trained again; "
                        "its record says so in reused_from")
    _add_parameter_options(p)
    p.set_defaults(func=_train)

    p = commands.add_parser("tune", help="search one model's hyperparameters on validation (equal budgets; issue 19)")
    p.add_argument("--data", required=True, help="processed data folder (its test split is never read)")
    p.add_argument("--model", required=True, help="registered model name (see `models`)")
    p.add_argument("--space", default="search_spaces.yaml", help="search space file (default: search_spaces.yaml)")
    p.add_argument("--out", required=True,
                   help="folder for the study journal, the trials table and the best configurations; a killed "
                        "search run again resumes from its journal")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where the trials train (default: params.yaml's train.executor)")
    _add_parameter_options(p)
    p.set_defaults(func=_tune)

    p = commands.add_parser("tuning-report", help="the searches' budget-sensitivity figure, cost and chosen configurations")
    p.add_argument("--tuning", required=True, type=Path, help="folder with one `tune` output folder per model")
    p.add_argument("--params", default="params.yaml", help="parameter file whose `tune` section the searches used")
    p.add_argument("--out", required=True, help="folder for budget_sensitivity.{png,pdf,csv} and TUNING.md")
    p.set_defaults(func=_tuning_report)

    p = commands.add_parser("aggregate", help="tables of test metrics over seeds, beside the paper's")
    _add_table_options(p, "folder with one sub-folder of run records per model (repeatable)",
                       "model the MTL gain is measured against")
    p.set_defaults(func=_aggregate)

    p = commands.add_parser("stats", help="confidence intervals, paired and DeLong tests, Holm correction")
    p.add_argument("--runs", required=True, action="append", type=Path,
                   help="folder with one sub-folder of run records per model (repeatable)")
    p.add_argument("--out", required=True, help="folder for the CSV tables and summary.md")
    p.add_argument("--reference", action="append", default=None,
                   help="model every other model is compared with (repeatable; default single_task)")
    p.set_defaults(func=_stats)

    p = commands.add_parser("experts", help="every gate's mean and std weight per expert on the test set (PLE Fig. 8)")
    p.add_argument("--runs", required=True, action="append", type=Path,
                   help="folder with one sub-folder of run records per model (repeatable)")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.set_defaults(func=_experts)

    p = commands.add_parser("sweep", help="test metrics and MTL gains over the synthetic correlation sweep (PLE Fig. 7)")
    p.add_argument("--runs", required=True, type=Path,
                   help="folder with one sub-folder per data set (correlation), each holding one per model")
    p.add_argument("--out", required=True, help="output path without extension (.csv and .md are written)")
    p.add_argument("--reference", default="single_task", help="model the MTL gain is measured against")
    _add_verdict_options(p)
    p.set_defaults(func=_sweep)

    p = commands.add_parser("figures", help="the papers' tables and figures and REPORT.md, from the results tables")
    p.add_argument("--census", type=Path, default=None, help="census table CSV of `aggregate` (Table 5, Fig. 3)")
    p.add_argument("--census-stats", type=Path, default=None,
                   help="folder of `stats` whose comparisons.csv has reference ple (PLE vs MMoE verdict)")
    p.add_argument("--experts", type=Path, default=None, help="expert-utilization CSV of `experts` (Fig. 8)")
    p.add_argument("--sweep", type=Path, default=None, help="synthetic sweep CSV of `sweep` (Fig. 7, MMoE Figs. 3-4)")
    p.add_argument("--runs", action="append", type=Path, default=[],
                   help="run-record folder (repeatable): MMoE's best-run table, the runs' protocol and hardware")
    p.add_argument("--synthetic-runs", type=Path, default=None,
                   help="the sweep's run-record folder, one sub-folder per correlation (MMoE Fig. 4 training curves)")
    p.add_argument("--synthetic-experts", type=Path, default=None,
                   help="expert-utilization CSV of `experts` on one synthetic correlation's runs (Fig. 8, synthetic)")
    p.add_argument("--group2-runs", action="append", type=Path, default=[],
                   help="run-record folder of the second census task group, education-marital (repeatable): "
                        "MMoE Table 2")
    p.add_argument("--synthetic-data", type=Path, default=None,
                   help="folder of the synthetic data sets the sweep trained on (`synth`'s, one per correlation): "
                        "their size, which Fig. 7 states beside the paper's")
    p.add_argument("--link-from", type=Path, default=None,
                   help="folder of another report (e.g. paper_figures) whose figures --link points to")
    p.add_argument("--link", nargs="+", default=[], metavar="STEM",
                   help="figures (file stems, e.g. fig7_correlation_gain) not written here but linked from --link-from; "
                        "each must be, byte for byte, the figure these inputs draw")
    p.add_argument("--out", required=True, type=Path, help="folder for the tables, figures and REPORT.md")
    _add_verdict_options(p)
    p.set_defaults(func=_figures)

    p = commands.add_parser("compare", help="check, train and rank a model of your own against the cached runs")
    p.add_argument("--model", required=True, metavar="PATH.py:CLASS",
                   help="your MTLModel subclass: a .py file anywhere or an importable module, then :ClassName")
    p.add_argument("--data", type=Path, default=Path("data/processed/census_income_marital"),
                   help="processed data folder (the cached runs' data)")
    p.add_argument("--seeds", default=None, help="seeds, e.g. 0-9 or 0,2,5-7 (default: params.yaml's seeds)")
    p.add_argument("--runs", action="append", type=Path, default=None,
                   help="folder of cached run records, one sub-folder per model (repeatable; default: "
                        "results/runs/census_income_marital and results/runs/census_income_marital_zoo, "
                        "those that exist)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the new runs, leaderboard_row.csv, comparisons.csv and summary.md "
                        "(default: results/compare/NAME; must be empty)")
    p.add_argument("--snapshot", type=Path, default=None,
                   help="leaderboard snapshot to compare with when no --runs are given (default: "
                        "results/snapshot/census_income_marital.json, read when the default run folders are absent; "
                        "checked against them when both exist). It holds no predictions: DeLong is skipped")
    p.add_argument("--weighting", default=None, metavar="METHOD",
                   help="train your model under this loss weighting method (replication/weighting/; default: "
                        "params.yaml's train.weighting); the leaderboard shows it in its own column")
    _add_parameter_options(p)
    p.set_defaults(func=_compare)

    p = commands.add_parser("same-runs", help="check that two run folders hold the same runs, number for number "
                                              "(timings, host and commit aside): a rerun's check")
    p.add_argument("runs", type=Path, help="folder with one sub-folder of run records per model")
    p.add_argument("other", type=Path, help="the folder to compare it with")
    p.set_defaults(func=_same_runs)

    p = commands.add_parser("snapshot", help="the reference runs' records without predictions, as one committed "
                                             "file that compare reads on a fresh clone")
    p.add_argument("--runs", required=True, type=Path, help="folder with one sub-folder of run records per model")
    p.add_argument("--out", required=True, type=Path, help="snapshot file to write (JSON)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; fail (exit 2) when --out no longer matches the runs, naming what differs")
    p.set_defaults(func=_snapshot)

    p = commands.add_parser("leaderboard", help="one ranked row per model and loss weighting, one table per protocol")
    _add_table_options(p, "folder with one sub-folder of run records per model (repeatable; may mix protocols)",
                       "model gains, Δm and ranks are measured against", runs_required=False)
    _add_runs_each(p, "folder of data-set folders (a sweep's: one per correlation), each read as one --runs")
    _add_verdict_options(p)
    p.set_defaults(func=_leaderboard)

    p = commands.add_parser("weighting-table", help="every (model, loss weighting) against Single-Task and against "
                                                    "equal weights, with each method's cost per epoch")
    _add_table_options(p, "folder with one sub-folder of run records per model (repeatable; one protocol)",
                       "gains are measured against it and against each model's equal weights", runs_required=False)
    _add_runs_each(p, "folder of one folder of runs per loss weighting method, each read as one --runs")
    p.set_defaults(func=_weighting_table)

    p = commands.add_parser("env", help="print the environment block stored with every run, as JSON")
    p.add_argument("--device", default="auto", help="device to describe (auto: as training would choose)")
    p.set_defaults(func=_env)

    p = commands.add_parser("profile-overrides",
                            help="a params.yaml profile as `-S KEY=VALUE` options of `dvc exp run` (make reproduce-paper)")
    p.add_argument("profile", help="profile name (a key of params.yaml's profiles)")
    p.add_argument("--params", default="params.yaml", help="parameter file")
    p.set_defaults(func=_profile_overrides)

    p = commands.add_parser("models", help="list registered models, one line each")
    p.add_argument("--hparams", action="store_true", help="also list each model's hyperparameters and defaults")
    p.set_defaults(func=_models)
    return parser


# The fix for each file-system failure a user meets; any other OSError is unexpected (a traceback).
FILE_SYSTEM_FIXES = {
    errno.ENOSPC: "free space on that disk (or pass --out, --checkpoints on another), then run the same command again",
    errno.EDQUOT: "free space within your disk quota, then run the same command again",
    errno.EROFS: "that file system is read-only; pass --out (and --checkpoints) on a writable one",
    errno.EACCES: "you may not use that path; fix its permissions or pass another path",
    errno.EPERM: "you may not use that path; fix its permissions or pass another path",
    errno.ENOENT: "check the path (a data set or run folder is created by `dvc repro` or the command that writes it)",
    errno.EISDIR: "a folder is in the way; pass a file path",
    errno.ENOTDIR: "a file is in the way where a folder is expected; pass another path",
}
INTERRUPTED = ("every file written so far is complete; run the same command again to resume (train resumes each "
               "unfinished seed from its last checkpoint)")


def file_system_message(error: OSError) -> str | None:
    """One line naming the file and the fix of an expected file-system failure; None for another."""
    fix = FILE_SYSTEM_FIXES.get(error.errno)
    if fix is None:
        return None
    where = error.filename if error.filename is not None else "a file"
    return f"{where}: {error.strerror or error}; {fix}"


def _say(message: str) -> None:
    """Print the command's last word on stderr, even when whoever read it has gone (a killed dvc)."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every expected failure ends in a message naming what was wrong and how to
    fix it, and a non-zero exit (2: bad input; 1: the environment or an interrupted run; 130 and
    143: Ctrl-C and SIGTERM). Unexpected errors keep their traceback."""
    args = build_parser().parse_args(argv)
    from models.registry import ModelError
    from replication.data.spec import PrepareError
    from replication.data.download import DownloadError
    from replication.data.processed import DataError
    from replication.lifetime import Terminated, sigterm_raises
    from replication.training import TrainingInterrupted

    try:
        with sigterm_raises():
            args.func(args)
    except (ConfigError, DataError, DownloadError, ModelError, PrepareError) as error:
        _say(f"error: {error}")
        return 2
    except TrainingInterrupted as error:
        _say(f"error: {error}")
        return 1
    except OSError as error:
        message = file_system_message(error)
        if message is None:
            raise
        _say(f"error: {message}")
        return 1
    except Terminated:
        _say(f"terminated (SIGTERM): {INTERRUPTED}")
        return 143
    except KeyboardInterrupt:
        _say(f"interrupted: {INTERRUPTED}")
        return 130
    return 0
