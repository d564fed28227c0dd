"""``python -m replication <command>``: the one command-line entry; dvc.yaml stages call only this."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from replication.config import ConfigError, from_mapping, load_params, section


def _download(args: argparse.Namespace) -> None:
    from replication.data.download import download_census

    download_census(args.out, mirror=args.mirror, timeout=args.timeout)


def _prepare(args: argparse.Namespace) -> None:
    from replication.data.census import prepare_census
    from replication.progress import log

    schema = prepare_census(args.raw, args.out, task_group=args.task_group, split_seed=args.split_seed,
                            numeric_buckets=args.numeric_buckets)
    rows = ", ".join(f"{name} {info['rows']}" for name, info in schema["splits"].items())
    log(f"prepared {schema['task_group']} in {args.out}: {rows}")


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


def _train(args: argparse.Namespace) -> None:
    from replication.data.processed import load_processed
    from replication.train import TrainConfig, parse_seeds, train_model

    params = apply_overrides(load_params(args.params), args.set)
    cfg = from_mapping(TrainConfig, section(params, "train"), "train")
    hparams = {**section(params, "model_common"), **(section(params, "models").get(args.model) or {})}
    seeds = parse_seeds(args.seeds)
    train_model(args.model, hparams, load_processed(args.data), cfg, seeds, Path(args.out))


def _aggregate(args: argparse.Namespace) -> None:
    from replication.aggregate import aggregate

    aggregate(args.runs, Path(args.out), reference=args.reference)


def _stats(args: argparse.Namespace) -> None:
    from replication.aggregate import write_stats

    write_stats(args.runs, Path(args.out), references=args.reference or ["single_task"])


def _experts(args: argparse.Namespace) -> None:
    from replication.experts import write_experts

    write_experts(args.runs, Path(args.out))


def _models(args: argparse.Namespace) -> None:
    from models import list_models
    from models.registry import model_hparams, model_summary

    width = max(map(len, list_models()))
    for name in list_models():
        print(f"{name:<{width}}  {model_summary(name)}")
        if args.hparams:
            print(" " * (width + 2) + ", ".join(f"{k}={v!r}" for k, v in model_hparams(name).items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m replication", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("download", help="download and verify a raw data set")
    p.add_argument("dataset", choices=["census"])
    p.add_argument("--out", required=True, help="folder for the raw files")
    p.add_argument("--mirror", default=None,
                   help="folder or URL tried first (default: $REPLICATION_DATA_MIRROR)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per network request")
    p.set_defaults(func=_download)

    p = commands.add_parser("prepare", help="turn raw files into processed arrays and schema.json")
    p.add_argument("dataset", choices=["census"])
    p.add_argument("--raw", required=True, help="folder holding the downloaded raw files")
    p.add_argument("--out", required=True, help="folder for the processed arrays")
    p.add_argument("--task-group", default="income-marital", help="income-marital or education-marital")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the validation/test split")
    p.add_argument("--numeric-buckets", type=int, default=0,
                   help="also embed each continuous column's training-quantile bucket (0 = off)")
    p.set_defaults(func=_prepare)

    p = commands.add_parser("train", help="train one model over several seeds")
    p.add_argument("--data", required=True, help="processed data folder")
    p.add_argument("--model", required=True, help="registered model name (see `models`)")
    p.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 or 0,2,5-7")
    p.add_argument("--out", required=True, help="folder for the run records and predictions")
    p.add_argument("--params", default="params.yaml", help="parameter file (sections train and models)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter, e.g. --set train.max_epochs=5 (repeatable)")
    p.set_defaults(func=_train)

    p = commands.add_parser("aggregate", help="tables of test metrics over seeds, beside the paper's")
    p.add_argument("--runs", required=True, action="append", type=Path,
                   help="folder with one sub-folder of run records per model (repeatable)")
    p.add_argument("--out", required=True, help="output path without extension (.csv and .md are written)")
    p.add_argument("--reference", default="single_task", help="model the MTL gain is measured against")
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

    p = commands.add_parser("models", help="list registered models, one line each")
    p.add_argument("--hparams", action="store_true", help="also list each model's hyperparameters and defaults")
    p.set_defaults(func=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models.registry import ModelError
    from replication.data.census import PrepareError
    from replication.data.download import DownloadError
    from replication.data.processed import DataError

    try:
        args.func(args)
    except (ConfigError, DataError, DownloadError, ModelError, PrepareError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
