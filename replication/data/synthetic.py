"""Two regression tasks with a controlled correlation: the MMoE paper's generator (Ma et al. 2018,
Sec. 3.2), used again by the PLE paper (Tang et al. 2020, Sec. 5.2.1, Fig. 7).

1. ``u1, u2``: orthonormal vectors in R^d (Gram-Schmidt on two Gaussian vectors).
2. ``w1 = c u1`` and ``w2 = c (p u1 + sqrt(1 - p^2) u2)``, so ``cos(w1, w2) = p``.
3. ``x`` ~ N(0, I_d), one row per sample.
4. ``y_k = w_k^T x + sum_{i=1..m} sin(alpha_i w_k^T x + beta_i) + eps_k`` with ``alpha_i, beta_i``
   ~ N(0, 1) drawn ONCE and shared by both tasks, and ``eps_k`` ~ N(0, noise_std^2) drawn
   independently for every task and every sample.

The papers write the noise as "N(0, 0.01)". In the usual N(mean, variance) notation that is a
variance of 0.01, i.e. ``noise_std = 0.1``: our default. ``noise_std = 0.01`` is the other reading.

Rows are generated in fixed-size chunks, each from its own child of the seed's ``SeedSequence``,
straight into float32 arrays: the PLE paper's size (1.4 million rows, d = 512, 2.9 GB of float32)
fits in memory, and the bytes depend only on the parameters and the seed (not on the chunk size a
machine could afford). The rows are i.i.d., so the splits are consecutive blocks: training first,
then validation, then test. Output: the processed-data format of :mod:`replication.data.processed`
(no categorical features, ``d`` numeric ones, two regression tasks ``task1`` and ``task2``).

Replicates (``data_seeds``, a parameter): with ``shared`` every training seed reads one data set (the
same x, u1, u2, sine parameters and noise), so seeds vary only the initialisation. With ``per_seed``
(the default in ``params.yaml``, as the MMoE paper's "each run with its own data draw") training
seed s reads its own replicate, drawn from ``SeedSequence(seed, spawn_key=(s,))``: its own u1, u2,
alpha, beta, x and noise, so the seeds are independent experiments, and the seeds of two models
with the same s read the same replicate (paired comparisons stay paired). Replicate s of two
correlations shares every draw but w2 (common random numbers across the correlation axis).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from replication.config import require
from replication.data.exact import cosine, dot, pearson, sin
from replication.data.processed import REPLICATES_FILE, data_hash, replicate_folder, set_hash
from replication.io import save_npz, sha256_file, staged_directory, write_json

CHUNK_ROWS = 65_536  # part of the generator's definition: the same seed gives the same bytes everywhere
TASKS = ("task1", "task2")
DATA_SEED_RULES = ("shared", "per_seed")
_TASK_GROUP = "correlation="  # a synthetic data set's task group names its correlation


def task_group(correlation: float) -> str:
    return f"{_TASK_GROUP}{correlation:g}"


def correlation_of(group: str) -> float:
    """The correlation a synthetic task group (``correlation=P``) was generated with."""
    if not group.startswith(_TASK_GROUP):
        raise ValueError(f"task group {group!r} is not a synthetic one ({_TASK_GROUP}P)")
    return float(group.removeprefix(_TASK_GROUP))


@dataclass(frozen=True)
class SyntheticConfig:
    """The generator's parameters; the papers' values are in ``params.yaml``'s ``synthetic`` section."""

    correlation: float
    rows: int = 100_000
    dim: int = 100
    scale: float = 1.0
    n_sines: int = 10
    noise_std: float = 0.1
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    replicate: int | None = None  # None: the data set of ``seed``; s: replicate s of it (module docstring)

    def validate(self, where: str = "synthetic") -> None:
        require(-1.0 <= self.correlation <= 1.0, where, "correlation", self.correlation, "must lie in [-1, 1]")
        require(self.dim >= 2, where, "dim", self.dim, "must be >= 2 (u1 and u2 must be orthogonal)")
        require(self.scale > 0, where, "scale", self.scale, "must be > 0")
        require(self.n_sines >= 0, where, "n_sines", self.n_sines, "must be >= 0")
        require(self.noise_std >= 0, where, "noise_std", self.noise_std, "must be >= 0")
        require(self.seed >= 0, where, "seed", self.seed, "must be >= 0")
        require(self.replicate is None or self.replicate >= 0, where, "replicate", self.replicate, "must be >= 0")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            require(0 < value < 1, where, name, value, "must lie strictly between 0 and 1")
        require(self.validation_fraction + self.test_fraction < 1, where, "validation_fraction + test_fraction",
                self.validation_fraction + self.test_fraction, "must be < 1 (training rows are the rest)")
        for split, n in self.split_rows().items():
            require(n >= 2, where, "rows", self.rows, f"is too small: the {split} split would get {n} row(s)")

    def split_rows(self) -> dict[str, int]:
        validation = round(self.rows * self.validation_fraction)
        test = round(self.rows * self.test_fraction)
        return {"train": self.rows - validation - test, "validation": validation, "test": test}


@dataclass(frozen=True)
class Generator:
    """The quantities drawn once per data set: task weight vectors and the shared sine parameters."""

    w: np.ndarray  # (dim, 2): columns w1, w2
    alpha: np.ndarray  # (n_sines,)
    beta: np.ndarray  # (n_sines,)
    noise_std: float

    @classmethod
    def draw(cls, cfg: SyntheticConfig, rng: np.random.Generator) -> "Generator":
        # Two orthonormal vectors by Gram-Schmidt with correctly rounded sums (not np.linalg.qr, whose
        # BLAS sums differ by CPU; replication/data/exact.py).
        g1, g2 = rng.standard_normal((2, cfg.dim))
        u1 = g1 / math.sqrt(dot(g1, g1))
        v = g2 - dot(u1, g2) * u1
        u2 = v / math.sqrt(dot(v, v))
        p = cfg.correlation
        w1 = cfg.scale * u1
        w2 = cfg.scale * (p * u1 + math.sqrt(max(0.0, 1.0 - p * p)) * u2)
        alpha = rng.standard_normal(cfg.n_sines)
        beta = rng.standard_normal(cfg.n_sines)
        return cls(np.stack([w1, w2], axis=1), alpha, beta, cfg.noise_std)

    def labels(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(rows, 2) labels of (rows, dim) inputs; the noise is drawn from ``rng``, per task and row."""
        # (rows, 2): w_k^T x, summed feature by feature in a fixed order (x @ w sums in BLAS, by CPU).
        z = np.zeros((len(x), 2))
        for j, column in enumerate(np.ascontiguousarray(x.T)):
            z += column[:, None] * self.w[j]
        # The same alpha_i, beta_i for both tasks: broadcast over the task axis. exact.sin, because numpy's
        # and the C library's sines differ in their last bits from one CPU to another.
        sines = sin(z[:, :, None] * self.alpha + self.beta)
        total = np.zeros_like(z)
        for i in range(sines.shape[-1]):  # summed in a fixed order, not by numpy's reduction
            total = total + sines[..., i]
        noise = rng.normal(0.0, self.noise_std, size=z.shape) if self.noise_std > 0 else 0.0
        return z + total + noise


def generate_arrays(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, Generator]:
    """All rows as float32 ``x`` (rows, dim) and ``y`` (rows, 2), built chunk by chunk."""
    cfg.validate()
    root = np.random.SeedSequence(cfg.seed, spawn_key=() if cfg.replicate is None else (cfg.replicate,))
    generator_seq, rows_seq = root.spawn(2)
    generator = Generator.draw(cfg, np.random.default_rng(generator_seq))
    x = np.empty((cfg.rows, cfg.dim), dtype=np.float32)
    y = np.empty((cfg.rows, len(TASKS)), dtype=np.float32)
    n_chunks = -(-cfg.rows // CHUNK_ROWS)
    for chunk, seq in enumerate(rows_seq.spawn(n_chunks)):
        rng = np.random.default_rng(seq)
        start = chunk * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, cfg.rows)
        block = rng.standard_normal((stop - start, cfg.dim))
        x[start:stop] = block
        y[start:stop] = generator.labels(block, rng)
    return x, y, generator


def generate_synthetic(cfg: SyntheticConfig, out_dir: Path) -> dict[str, Any]:
    """Write the three splits and ``schema.json`` to ``out_dir``; returns the schema."""
    x, y, generator = generate_arrays(cfg)
    out_dir = Path(out_dir)
    split_info, start = {}, 0
    for split, n in cfg.split_rows().items():
        rows = slice(start, start + n)
        start += n
        save_npz(out_dir / f"{split}.npz", x_cat=np.zeros((n, 0), dtype=np.int64), x_num=x[rows], y=y[rows])
        split_info[split] = {"rows": n, "label_mean": y[rows].mean(axis=0).tolist(),
                             "sha256": sha256_file(out_dir / f"{split}.npz")}
    w1, w2 = generator.w[:, 0], generator.w[:, 1]
    generator_info = {k: v for k, v in asdict(cfg).items() if k != "replicate" or v is not None}
    schema = {
        "dataset": "synthetic",
        "task_group": task_group(cfg.correlation),
        "split_seed": cfg.seed,
        "generator": {
            **generator_info,
            "equations": "y_k = w_k^T x + sum_i sin(alpha_i w_k^T x + beta_i) + eps_k (Ma et al. 2018, Sec. 3.2)",
            "cos_w1_w2": cosine(w1, w2),
            "alpha": generator.alpha.tolist(),
            "beta": generator.beta.tolist(),
            "chunk_rows": CHUNK_ROWS,
        },
        "features": {"categorical": [], "numeric": [f"x{i}" for i in range(cfg.dim)],
                     "numeric_transform": "none: x ~ N(0, I)"},
        "tasks": [{"name": t, "type": "regression", "definition": f"y{k + 1} of the generator"}
                  for k, t in enumerate(TASKS)],
        "main_task": TASKS[0],
        "label_correlation_train": float(pearson(y[:split_info["train"]["rows"]])[0, 1]),
        "splits": split_info,
        "data_hash": data_hash(out_dir),
    }
    write_json(out_dir / "schema.json", schema)
    return schema


def generate_replicates(cfg: SyntheticConfig, seeds: list[int], rule: str, out_dir: Path) -> dict[str, Any]:
    """The data a set of training seeds reads, by the data seed ``rule`` (module docstring): ``shared``
    writes one processed data set to ``out_dir``; ``per_seed`` writes replicate s of ``cfg`` to
    ``out_dir/seed_s`` for every training seed s and lists them in ``replicates.json`` (the set's
    hash is the hash of the replicates' hashes, in seed order). The folder appears whole or not at all.
    Returns the manifest (``per_seed``) or the schema (``shared``)."""
    if rule not in DATA_SEED_RULES:
        raise ValueError(f"synthetic.data_seeds = {rule!r}: use one of {', '.join(DATA_SEED_RULES)}")
    with staged_directory(Path(out_dir)) as staging:
        if rule == "shared":
            return generate_synthetic(cfg, staging)
        hashes = {}
        for seed in seeds:
            schema = generate_synthetic(replace(cfg, replicate=seed), replicate_folder(staging, seed))
            hashes[str(seed)] = schema["data_hash"]
        manifest = {"rule": rule, "seeds": list(seeds), "data_hash": set_hash(hashes), "replicates": hashes,
                    "task_group": task_group(cfg.correlation), "generator_seed": cfg.seed}
        write_json(staging / REPLICATES_FILE, manifest)
        return manifest
