"""Replication package and benchmark for multi-task recommendation models (PLE, RecSys 2020).

Data flows one way: ``replication.data`` (download, prepare) -> processed arrays + schema ->
``replication.training`` (models through the registry only) -> run records + predictions ->
``replication.aggregate`` -> tables under ``results/``.
"""

__version__ = "0.2.0"
