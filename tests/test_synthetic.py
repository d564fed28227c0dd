"""The synthetic generator (MMoE paper Sec. 3.2): its equations, its determinism and its output format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from replication.cli import main
from replication.config import ConfigError
from replication.data.processed import load_processed
from replication.data.synthetic import (
    CHUNK_ROWS, Generator, SyntheticConfig, correlation_of, generate_arrays, generate_synthetic, task_group,
)


@pytest.mark.parametrize("p", [-1.0, -0.3, 0.0, 0.2, 0.5, 0.75, 1.0])
def test_task_weights_have_cosine_p_and_norm_c(p):
    cfg = SyntheticConfig(p, rows=10, dim=64, scale=2.5)
    g = Generator.draw(cfg, np.random.default_rng(3))
    w1, w2 = g.w[:, 0], g.w[:, 1]
    assert w1 @ w2 / (np.linalg.norm(w1) * np.linalg.norm(w2)) == pytest.approx(p, abs=1e-6)
    assert np.linalg.norm(w1) == pytest.approx(2.5, rel=1e-9)
    assert np.linalg.norm(w2) == pytest.approx(2.5, rel=1e-9)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_without_sines_and_noise_the_label_correlation_is_p(p):
    x, y, _ = generate_arrays(SyntheticConfig(p, rows=200_000, dim=32, n_sines=0, noise_std=0.0))
    # Labels are w_k^T x exactly, so corr(y1, y2) = p up to sampling error (about 1/sqrt(n) = 0.002).
    assert np.corrcoef(y.T)[0, 1] == pytest.approx(p, abs=0.01)


def test_sines_are_shared_by_both_tasks_and_the_noise_is_not():
    # With p = 1, w1 = w2: shared sines make the noiseless labels identical, so any difference
    # between the tasks is their noise, which must be independent per task and per row.
    x, y, g = generate_arrays(SyntheticConfig(1.0, rows=100_000, dim=16, noise_std=0.1, seed=4))
    z = x.astype(np.float64) @ g.w[:, 0]
    clean = z + np.sin(z[:, None] * g.alpha + g.beta).sum(axis=1)
    noise = y.astype(np.float64) - clean[:, None]
    assert noise.std(axis=0) == pytest.approx([0.1, 0.1], rel=0.02)
    assert abs(np.corrcoef(noise.T)[0, 1]) < 0.02  # not one draw reused for both tasks
    assert np.unique(noise[:, 0]).size > 99_000  # not one scalar per data set
    # A generator that drew task 2's sine parameters afresh would leave much more than noise.
    assert np.abs(y[:, 0] - y[:, 1]).max() < 1.5


def test_labels_follow_the_equation_with_one_alpha_beta_draw():
    g = Generator(w=np.array([[1.0, 0.0], [0.0, 2.0]]), alpha=np.array([0.5, -1.0]), beta=np.array([0.1, 0.2]),
                  noise_std=0.0)
    x = np.array([[1.0, 3.0], [-2.0, 0.5]])
    y = g.labels(x, np.random.default_rng(0))
    for k in range(2):
        z = x @ g.w[:, k]
        expected = z + np.sin(0.5 * z + 0.1) + np.sin(-1.0 * z + 0.2)
        np.testing.assert_allclose(y[:, k], expected, rtol=1e-12)


def test_same_seed_same_bytes_and_another_seed_other_rows(tmp_path):
    cfg = SyntheticConfig(0.5, rows=CHUNK_ROWS + 500, dim=8)  # two chunks
    first = generate_synthetic(cfg, tmp_path / "a")
    second = generate_synthetic(cfg, tmp_path / "b")
    for split in ("train", "validation", "test"):
        assert (tmp_path / "a" / f"{split}.npz").read_bytes() == (tmp_path / "b" / f"{split}.npz").read_bytes()
    assert first["data_hash"] == second["data_hash"]
    other = generate_synthetic(SyntheticConfig(0.5, rows=CHUNK_ROWS + 500, dim=8, seed=1), tmp_path / "c")
    assert other["data_hash"] != first["data_hash"]


def test_rows_do_not_depend_on_the_total_size():
    # Chunks are seeded by their index: a larger data set starts with the same rows.
    small, _, _ = generate_arrays(SyntheticConfig(0.5, rows=1000, dim=8))
    large, _, _ = generate_arrays(SyntheticConfig(0.5, rows=CHUNK_ROWS + 10, dim=8))
    np.testing.assert_array_equal(small, large[:1000])


def test_output_is_the_processed_format_with_two_regression_tasks(tmp_path):
    schema = generate_synthetic(SyntheticConfig(0.75, rows=1000, dim=6), tmp_path)
    data = load_processed(tmp_path)
    assert [t.type for t in data.tasks] == ["regression", "regression"]
    assert {name: split.rows for name, split in data.splits.items()} == {"train": 800, "validation": 100, "test": 100}
    assert data.splits["train"].x_cat.shape == (800, 0)
    assert data.splits["train"].x_num.shape == (800, 6)
    assert schema["generator"]["cos_w1_w2"] == pytest.approx(0.75, abs=1e-9)
    assert correlation_of(schema["task_group"]) == 0.75 and task_group(0.75) == schema["task_group"]
    assert json.loads((tmp_path / "schema.json").read_text())["generator"]["noise_std"] == 0.1


@pytest.mark.parametrize("kwargs, message", [
    ({"correlation": 1.5}, "synthetic.correlation = 1.5: must lie in [-1, 1]"),
    ({"correlation": 0.5, "dim": 1}, "synthetic.dim = 1: must be >= 2"),
    ({"correlation": 0.5, "noise_std": -0.1}, "synthetic.noise_std = -0.1: must be >= 0"),
    ({"correlation": 0.5, "rows": 10}, "synthetic.rows = 10: is too small"),
    ({"correlation": 0.5, "validation_fraction": 0.5, "test_fraction": 0.5}, "must be < 1"),
])
def test_bad_generator_parameters_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        SyntheticConfig(**kwargs).validate()


def test_synth_command_refuses_a_bad_correlation_and_writes_nothing(tmp_path, capsys):
    assert main(["synth", "--correlation", "-2", "--n", "100", "--out", str(tmp_path / "out")]) == 2
    assert "synth.correlation = -2.0: must lie in [-1, 1]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_synth_command_writes_a_data_set(tmp_path, capsys):
    assert main(["synth", "--correlation", "0.4", "--n", "500", "--dim", "5", "--out", str(tmp_path)]) == 0
    assert "cos(w1, w2) = 0.400000" in capsys.readouterr().err
    assert load_processed(tmp_path).schema["generator"]["rows"] == 500


def test_per_seed_replicates_are_independent_draws_and_paired_by_seed(tmp_path):
    from replication.data.processed import load_data
    from replication.data.synthetic import generate_replicates

    cfg = SyntheticConfig(0.5, rows=400, dim=6)
    manifest = generate_replicates(cfg, [0, 3], "per_seed", tmp_path / "set")
    data = load_data(tmp_path / "set")
    assert data.seeds == [0, 3] and data.protocol_hash == manifest["data_hash"]
    zero, three = data.for_seed(0), data.for_seed(3)
    # each replicate its own draw of everything: other inputs and other sine parameters
    assert not np.array_equal(zero.splits["train"].x_num.numpy(), three.splits["train"].x_num.numpy())
    assert zero.schema["generator"]["alpha"] != three.schema["generator"]["alpha"]
    assert zero.protocol_hash == three.protocol_hash == manifest["data_hash"]  # the set is the protocol's data
    # replicate s is the same draw every time, and differs from the shared data set of the same seed
    again = generate_replicates(cfg, [3], "per_seed", tmp_path / "again")
    assert again["replicates"]["3"] == manifest["replicates"]["3"]
    shared = generate_replicates(cfg, [0, 3], "shared", tmp_path / "shared")
    assert shared["data_hash"] == generate_synthetic(cfg, tmp_path / "plain")["data_hash"]  # shared: today's bytes
    assert shared["data_hash"] not in manifest["replicates"].values()


def test_a_seed_without_a_replicate_and_a_tampered_set_are_refused(tmp_path):
    from replication.data.processed import DataError, load_data
    from replication.data.synthetic import generate_replicates

    generate_replicates(SyntheticConfig(0.5, rows=400, dim=6), [0, 1], "per_seed", tmp_path / "set")
    data = load_data(tmp_path / "set")
    with pytest.raises(DataError, match=r"not for seed\(s\) \[2\]"):
        data.require_seeds([0, 2])
    manifest = json.loads((tmp_path / "set" / "replicates.json").read_text())
    manifest["replicates"]["1"] = "0" * 64
    (tmp_path / "set" / "replicates.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="does not match its replicates' hashes"):
        load_data(tmp_path / "set")


def test_a_failed_generation_leaves_no_partial_folder(tmp_path, monkeypatch):
    import replication.data.synthetic as synthetic

    calls = []

    def failing(cfg, out_dir):
        calls.append(cfg.replicate)
        if len(calls) == 2:
            raise OSError("disk full")
        return generate_synthetic(cfg, out_dir)

    monkeypatch.setattr(synthetic, "generate_synthetic", failing)
    with pytest.raises(OSError, match="disk full"):
        synthetic.generate_replicates(SyntheticConfig(0.5, rows=400, dim=6), [0, 1], "per_seed", tmp_path / "set")
    assert list(tmp_path.iterdir()) == []


def test_train_gives_each_seed_its_replicate_and_refuses_an_ensemble(tmp_path):
    assert main(["synth", "--correlation", "0.5", "--n", "600", "--dim", "6", "--data-seeds", "per_seed",
                 "--seeds", "0-1", "--out", str(tmp_path / "set")]) == 0
    assert main(["train", "--data", str(tmp_path / "set"), "--model", "shared_bottom", "--seeds", "0-1",
                 "--profile", "synthetic", "--set", "train.max_epochs=1", "--set", "train.seed_workers=1",
                 "--out", str(tmp_path / "runs")]) == 0
    manifest = json.loads((tmp_path / "set" / "replicates.json").read_text())
    for seed in (0, 1):
        record = json.loads((tmp_path / "runs" / f"seed_{seed}.json").read_text())
        assert record["data_hash"] == manifest["data_hash"]
        assert record["replicate_data_hash"] == manifest["replicates"][str(seed)]
    assert main(["train", "--data", str(tmp_path / "set"), "--model", "shared_bottom", "--seeds", "0-1",
                 "--set", "train.ensemble=2", "--out", str(tmp_path / "ens")]) == 2
