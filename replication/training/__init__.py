"""Training: one model's seeds on a processed data set, selecting on validation only.

The modules point one way: ``config`` (the training configuration, seeds, devices) <- ``objective``
(the joint loss, its weights, the optimizer) <- ``evaluation`` (predictions, metrics, selection,
stopping) <- ``steps`` (the pluggable step: one seed, or seeds stacked) <- ``loop`` (the one
training loop, :func:`train_seeds`, and the run records) <- ``units`` (units of work, which write the
records and predictions). Outside the package, :mod:`replication.executors` runs units where
``train.executor`` says and :func:`replication.runner.train_model` trains a model's seeds through it.
"""

from replication.training.config import TrainConfig, parse_seeds, resolve_device
from replication.training.loop import RECORD_FORMAT, train_seed, train_seeds
from replication.training.units import TrainingInterrupted, predictions_path, record_path

__all__ = ["RECORD_FORMAT", "TrainConfig", "TrainingInterrupted", "parse_seeds", "predictions_path", "record_path",
           "resolve_device", "train_seed", "train_seeds"]
