"""Where a training command's units of work run: on this machine (``local``) or on a Ray cluster (``ray``).

A unit of work (:class:`replication.training.units.WorkUnit`) is one model's chunk of seeds on one data set:
one seed, or ``train.ensemble`` seeds trained together (a search's trial,
:class:`replication.tuning.TrialUnit`, is one too). Every executor calls the same
:meth:`WorkUnit.run <replication.training.units.WorkUnit.run>` on it, which trains (or, from its checkpoint,
restores or resumes) the unit's seeds and writes, per seed, the predictions and then the record, each
atomically; executors differ only in where that call runs and how the data reaches it:

- ``local`` (the default): in this process, or in spawned worker processes on this machine that
  each receive the data once (``train.seed_workers``, :func:`replication.training.config.plan_workers`).
- ``ray``: one Ray task per unit, on the cluster at ``RAY_ADDRESS`` or, without it, on a Ray
  instance started for the command on this machine (with every core this process may use). The
  data goes to Ray's object store once (``ray.put``) and every task reads it from there. A task asks
  for ``train.num_threads`` CPUs (0: one, the best use of a core for these small models) and, on a
  GPU, ``1 / train.seed_workers`` of one (0: a whole GPU), as the local executor shares a GPU among
  ``train.seed_workers`` processes. A task whose worker process dies (killed, out of memory, its node
  lost) is run again, up to :data:`MAX_RETRIES` times, and each of its unfinished seeds resumes from
  its last checkpoint, its finished ones are restored; an error the training itself raises (a broken
  model) is not retried and stops the command as it does locally.

Records name the host and device that trained them: :func:`replication.provenance.environment` is
called inside the unit, wherever it runs. Results land in the same folders whatever the executor,
and an executor changes no number: records differ only in ``train.executor`` and wall-clock time
(tested), and the executor is outside the protocol hash (:data:`replication.protocol.EXECUTION_KEYS`).
On a cluster, the output and checkpoint folders must be on a file system every node sees.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

import torch

from replication.config import ConfigError
from replication.data.processed import Processed
from replication.lifetime import die_with_parent
from replication.progress import log, watch_batches
from replication.training.config import TrainConfig, cpu_cores, plan_workers, resolve_device
from replication.training.units import TrainingInterrupted, Unit, _set_up_process, _set_up_worker, record_path

MAX_RETRIES = 3  # runs of a Ray task after the first, when its worker process dies
RAY_MISSING = ("train.executor = 'ray' needs Ray, which is not installed in this environment. Install the pinned "
               "version with `pip install -e '.[distributed]'` (or `make env`, whose requirements.lock includes it), "
               "or use --executor local")

Records = list[dict[str, Any]]
Done = Callable[[Unit], None]


def make_executor(cfg: TrainConfig) -> "LocalExecutor | RayExecutor":
    """The executor ``cfg.executor`` names; a context manager (the ray executor holds its Ray session
    inside the ``with`` block)."""
    return RayExecutor(cfg) if cfg.executor == "ray" else LocalExecutor()


def _run_labelled(unit: Unit, data: Processed | None, show_epochs: bool = False) -> Records:
    """``unit.run`` with its slow training batches named on stderr (:func:`replication.progress.watch_batches`)."""
    watch_batches(f"{unit.model_name} seed(s) {', '.join(map(str, unit.seeds))}")
    return unit.run(data, show_epochs=show_epochs)


def _set_up_local_worker(threads: int, data: Processed, parent: int) -> None:
    """A local worker process: killed with the command that spawned it (``parent``, its pid), then
    set up as :func:`replication.training.units._set_up_worker` does."""
    die_with_parent(parent=parent)
    _set_up_worker(threads, data)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End a pool's worker processes now: on an interruption (Ctrl-C, SIGTERM, a dead worker) the
    pool would otherwise wait for every running unit to finish, or leave the workers behind.
    Their checkpoints are written atomically, so a rerun resumes from them."""
    for process in list(getattr(pool, "_processes", {}).values()):  # no public way to reach them
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _unfinished(units: Sequence[Unit]) -> str:
    return ", ".join(str(seed) for unit in units for seed in unit.seeds
                     if not record_path(unit.out_dir, seed).exists())


def _check_reachable(address: str) -> None:
    """Refuse at once a ``HOST:PORT`` address nothing listens at (``ray.init`` would wait minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # another form of address (ray://..., auto): ray.init judges it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise ConfigError(f"RAY_ADDRESS={address}: nothing answers there ({error}). Start the cluster's head node "
                          f"(`ray start --head --port={port}`), or unset RAY_ADDRESS to run on a Ray instance on "
                          f"this machine") from None


class LocalExecutor:
    """Units in this process (one worker), or in spawned worker processes on this machine. Inside
    ``with``, the worker processes started by one :meth:`run` serve the next ones too, as long as they
    get the same data and the same plan (a search's batches of trials); outside it, each call starts
    and ends its own."""

    _pool: ProcessPoolExecutor | None = None
    _pool_key: tuple | None = None
    _keep_pool = False

    def __enter__(self) -> "LocalExecutor":
        self._keep_pool = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._keep_pool = False
        self._close()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._pool_key = None, None

    def _pool_for(self, workers: int, threads: int, data: Processed) -> ProcessPoolExecutor:
        """The worker processes for ``workers`` x ``threads`` on ``data``: the current ones when they
        were started for the same, else new ones (spawned: fork after torch has started threads can hang)."""
        key = (workers, threads, id(data))
        if self._pool is None or self._pool_key != key:
            self._close()
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_set_up_local_worker, initargs=(threads, data, os.getpid()))
            self._pool_key, self._pool_data = key, data  # the data is held, so that its id stays its own
        return self._pool

    def device(self, name: str) -> torch.device:
        return resolve_device(name)

    def run(self, units: Sequence[Unit], data: Processed, done: Done) -> list[Records]:
        """Every unit's records, in the order of ``units``; ``done(unit)`` as each one finishes."""
        if not units:
            return []
        first = units[0]
        workers, threads = plan_workers(first.cfg, first.device, len(units))
        if workers == 1:
            _set_up_process(threads)
            results = []
            for unit in units:
                results.append(_run_labelled(unit, data, show_epochs=True))
                done(unit)
            return results
        log(f"{first.model_name}: {sum(len(u.seeds) for u in units)} seeds in {workers} processes of {threads} "
            f"thread(s)" + (f", {first.cfg.ensemble} seeds trained together" if first.cfg.ensemble > 1 else ""))
        pool = self._pool_for(workers, threads, data)
        futures = {pool.submit(_run_labelled, unit, None): i for i, unit in enumerate(units)}
        try:
            for future in as_completed(futures):
                future.result()  # a failed seed raises here, naming its error
                done(units[futures[future]])
        except BaseException as error:
            _stop_workers(pool)
            self._pool, self._pool_key = None, None
            if not isinstance(error, BrokenProcessPool):
                raise
            raise TrainingInterrupted(
                f"{first.model_name}: a worker process died (killed, or out of memory) while training seed(s) "
                f"{_unfinished(units)}; the seeds written so far are complete. Run the same command again to "
                f"resume (each unfinished seed from its last checkpoint)") from error
        by_unit = {futures[f]: f.result() for f in futures}
        if not self._keep_pool:
            self._close()
        return [by_unit[i] for i in range(len(units))]


def _run_unit(unit: Unit, data: list, threads: int) -> Records:
    """A Ray task: one unit of work in a Ray worker process. ``data`` is ``[reference]`` to the data
    in the object store (in a list, so that Ray leaves it to this function to fetch)."""
    import ray

    _set_up_process(threads)
    with warnings.catch_warnings():
        # The arrays are zero-copy, read-only views of the object store (one copy per node, however
        # many tasks read it), and torch warns that its tensors over them are read-only; the trainer
        # never writes to its data.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        processed = ray.get(data[0])
    return _run_labelled(unit, processed)


class RayExecutor:
    """One Ray task per unit, on the cluster at ``RAY_ADDRESS`` or on a Ray instance on this machine
    (see the module docstring). Inside ``with``, Ray is connected; a Ray instance this executor
    started is shut down on leaving, one that was already running (a test's) is left as it was."""

    def __init__(self, cfg: TrainConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(RAY_MISSING) from None
        self.ray = ray
        self.cfg = cfg
        self.address = os.environ.get("RAY_ADDRESS") or None
        self.started = False

    def __enter__(self) -> "RayExecutor":
        if not self.ray.is_initialized():
            if self.address:
                _check_reachable(self.address)
                try:
                    self.ray.init(address=self.address)
                except ConnectionError as error:
                    raise ConfigError(
                        f"RAY_ADDRESS={self.address}: could not connect to the Ray cluster there ({error}). If it "
                        f"uses token authentication (Ray turns it on when the head node has a token in "
                        f"~/.ray/auth_token), set RAY_AUTH_MODE=token for this command too, with the same token; "
                        f"or unset RAY_ADDRESS to run on a Ray instance on this machine") from error
            else:
                # address="local": a new instance, never a cluster some other `ray start` left running here.
                self.ray.init(address="local", num_cpus=max(cpu_cores(), self.cfg.num_threads),
                              include_dashboard=False)
            self.started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def _where(self) -> str:
        resources = self.ray.cluster_resources()
        nodes = sum(1 for node in self.ray.nodes() if node.get("Alive"))
        place = f"the Ray cluster at {self.address}" if self.address else "a Ray instance on this machine"
        return (f"{place} ({nodes} node(s), {resources.get('CPU', 0):g} CPUs, "
                f"{resources.get('GPU', 0):g} GPUs)")

    def device(self, name: str) -> torch.device:
        """The device the tasks train on, decided by the cluster's resources rather than this
        machine's: ``auto`` is a GPU when the cluster has one. A task sees the GPU Ray gives it as
        ``cuda``, so ``cuda:N`` is refused."""
        if name.startswith("cuda:"):
            raise ConfigError(f"train.device = {name!r}: with the ray executor use cuda or auto; Ray gives each task "
                              f"its GPU (CUDA_VISIBLE_DEVICES), which the task sees as cuda")
        has_gpu = self.ray.cluster_resources().get("GPU", 0) > 0
        if name == "auto":
            return torch.device("cuda" if has_gpu else "cpu")
        if name == "cuda" and not has_gpu:
            raise ConfigError(f"train.device = 'cuda', but {self._where()} has no GPU; use auto or cpu, or add "
                              f"GPU nodes")
        return torch.device(name)

    def run(self, units: Sequence[Unit], data: Processed, done: Done) -> list[Records]:
        """Every unit's records, in the order of ``units``; ``done(unit)`` as each one finishes. A
        unit that fails does not stop the others: when all have ended, the first failure is raised
        (the training's own error, as the local executor raises it; or TrainingInterrupted when a
        task's worker died on every try)."""
        if not units:
            return []
        ray = self.ray
        first = units[0]
        cpus = first.cfg.num_threads or 1
        gpus = 1 / (first.cfg.seed_workers or 1) if first.device.type == "cuda" else 0
        # retry_exceptions=False: only a dead worker is retried, never an error of the model's.
        # max_calls=1 on a GPU: a fresh process per task, so that each sees the GPU Ray gives it
        # (CUDA_VISIBLE_DEVICES) and releases its memory (Ray's own default for GPU tasks).
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False,
                          max_calls=1 if gpus else 0)(_run_unit)
        log(f"{first.model_name}: {sum(len(u.seeds) for u in units)} seeds as {len(units)} Ray task(s) of {cpus} "
            f"CPU(s)" + (f" and {gpus:g} GPU" if gpus else "") + f" each, on {self._where()}"
            + (f"; {first.cfg.ensemble} seeds trained together" if first.cfg.ensemble > 1 else ""))
        data_ref = ray.put(data)  # once; every task reads it from the object store
        refs = [task.remote(unit, [data_ref], cpus) for unit in units]
        position = {ref: i for i, ref in enumerate(refs)}
        results: list[Records | None] = [None] * len(units)
        failures: list[tuple[Unit, Exception]] = []
        pending = refs
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                unit = units[position[ref]]
                try:
                    results[position[ref]] = ray.get(ref)
                except ray.exceptions.RayError as failure:
                    failures.append((unit, failure))
                    continue
                done(unit)
        if failures:
            unit, failure = failures[0]
            if isinstance(failure, ray.exceptions.RayTaskError):  # the unit raised: its own exception
                raise failure.cause if isinstance(failure.cause, BaseException) else failure
            raise TrainingInterrupted(  # its worker died on every try
                f"{unit.model_name}: the Ray task training seed(s) {', '.join(map(str, unit.seeds))} died "
                f"{MAX_RETRIES + 1} times (killed, out of memory, or its node lost: {type(failure).__name__}); "
                f"seed(s) {_unfinished(units)} unfinished, the seeds written so far are complete. Run the same "
                f"command again to resume (each unfinished seed from its last checkpoint)") from failure
        return results  # type: ignore[return-value]
