"""The model zoo: one file per model, each registered by name.

``create_model(name, schema, **hparams)`` and ``list_models()`` are the only public constructors.
Every module in this package is imported on first use, so adding a model touches only its own file.
``models`` never imports ``replication``: a model knows nothing of files, seeds or devices.
"""

from models.base import InputSpec, MTLModel, MTLOutput, TaskSpec
from models.registry import create_model, get_model_class, list_models, register_model

__all__ = [
    "InputSpec",
    "MTLModel",
    "MTLOutput",
    "TaskSpec",
    "create_model",
    "get_model_class",
    "list_models",
    "register_model",
]
