"""Tests for the models whose tasks are coupled without hard sharing: L2-Constrained (tied through the
loss), Tensor-Factorisation (per-task weights as slices of one Tucker tensor) and Sluice Networks (alpha
and beta units). The shared contract of every model is in ``tests/test_models.py``.

Everything runs on small hand-made schemas; no data file is read.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import models
from models.registry import model_hparams
from tests.model_helpers import CARDS, N_NUM, build, changed_tasks, make_batch, make_schema, perturb

def census_schema(n_tasks: int = 2) -> dict[str, Any]:
    """Census-sized: 31 categorical features of cardinality 10 and 7 numeric ones."""
    return make_schema(cards=(10,) * 31, n_num=7, tasks=tuple((f"task{k}", "binary") for k in range(n_tasks)))


def value(tensor: torch.Tensor) -> float:
    return float(tensor.detach())


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------------------
# L2-Constrained


def test_l2_constrained_penalty_matches_a_hand_computation() -> None:
    schema = make_schema(cards=(2,), n_num=1, tasks=(("a", "binary"), ("b", "regression"), ("c", "binary")))
    model = build("l2_constrained", schema, embedding_dim=2, bottom_units=(3,), tower_units=(2,), l2_weight=0.5)
    assert model.tasks_independent is False
    thetas = {}
    for t in "abc":  # embedding table (2, 2), then the bottom's Linear(3, 3) weight and bias
        emb, linear = model.embeddings[t].table.weight, model.bottoms[t][0]
        thetas[t] = torch.cat([emb.flatten(), linear.weight.flatten(), linear.bias]).detach()
        assert thetas[t].numel() == 4 + 9 + 3
    expected = 0.5 * sum(float(((thetas[i] - thetas[j]) ** 2).sum()) for i, j in (("a", "b"), ("a", "c"), ("b", "c")))
    assert expected > 0  # the tasks start from independent random draws
    assert value(model.regularization()) == pytest.approx(expected, rel=1e-6)


def test_l2_constrained_towers_are_not_constrained() -> None:
    model = build("l2_constrained", l2_weight=1.0)
    before = value(model.regularization())
    perturb(model.towers["t1"])
    assert value(model.regularization()) == before


def test_l2_constrained_penalty_is_zero_for_equal_bottoms() -> None:
    model = build("l2_constrained")
    assert value(model.regularization()) > 0
    state = model.state_dict()
    copied = {k.replace(".t1.", ".t2."): v for k, v in state.items()
              if k.startswith(("embeddings.t1.", "bottoms.t1."))}
    model.load_state_dict({**state, **copied})
    assert value(model.regularization()) == 0.0
    # The towers still differ, so the tasks still predict differently.
    out = model(*make_batch()).outputs
    assert not torch.allclose(out["t1"], out["t2"])


def test_l2_constrained_penalty_gradient_pulls_the_tasks_together() -> None:
    model = build("l2_constrained", l2_weight=1.0)
    penalty = model.regularization()
    penalty.backward()
    for t in model.task_names:
        for p in model.constrained_parameters(t):
            assert p.grad is not None and (p.grad != 0).any()
        for p in model.towers[t].parameters():
            assert p.grad is None
    # grad of ||a - b||^2 is 2(a - b) on a and its negative on b
    w1, w2 = model.bottoms["t1"][0].weight, model.bottoms["t2"][0].weight
    torch.testing.assert_close(w1.grad, 2 * (w1 - w2).detach())
    torch.testing.assert_close(w2.grad, -w1.grad)
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.sub_(0.1 * p.grad)
    assert value(model.regularization()) < value(penalty)


def test_l2_constrained_weight_zero_is_single_task() -> None:
    schema = make_schema(tasks=(("a", "binary"), ("b", "regression")))
    l2 = build("l2_constrained", schema, seed=4, l2_weight=0.0)
    single = build("single_task", schema, seed=4)
    assert l2.regularization() is None
    assert l2.tasks_independent is True
    assert build("l2_constrained").tasks_independent is False
    assert model_hparams("l2_constrained")["l2_weight"] == 1e-4
    # Same construction order: a seed gives both models the same initial parameters.
    state_l2, state_single = l2.state_dict(), single.state_dict()
    assert list(state_l2) == list(state_single)
    for key in state_l2:
        assert torch.equal(state_l2[key], state_single[key]), key
    with pytest.raises(ValueError, match="l2_weight"):
        build("l2_constrained", l2_weight=-1.0)


def test_l2_constrained_each_task_has_its_own_network() -> None:
    model = build("l2_constrained", make_schema(tasks=(("a", "binary"), ("b", "binary"), ("c", "binary"))))
    batch = make_batch()
    assert changed_tasks(model, model.bottoms["b"], batch) == {"b"}
    assert changed_tasks(model, model.embeddings["a"], batch) == {"a"}
    assert not torch.equal(model.bottoms["a"][0].weight, model.bottoms["b"][0].weight)


# --------------------------------------------------------------------------------------------------
# Tensor-Factorisation


def test_tensor_factorization_weights_are_the_tucker_reconstruction() -> None:
    schema = make_schema(tasks=(("a", "binary"), ("b", "regression"), ("c", "binary")))
    model = build("tensor_factorization", schema, bottom_units=(12, 6), ranks=(5, 4, 2), tower_units=(3,))
    first, second = model.layers
    assert first.ranks == (5, 4, 2) and second.ranks == (5, 4, 2)
    assert first.core.shape == (5, 4, 2)
    assert first.u_in.shape == (model.input_dim, 5)
    assert first.u_out.shape == (12, 4) and first.u_task.shape == (3, 2)
    assert second.u_in.shape == (12, 5)
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        for layer in model.layers:
            s, u1, u2, u3 = layer.core, layer.u_in, layer.u_out, layer.u_task
            w = torch.zeros(u1.shape[0], u2.shape[0], u3.shape[0])
            for a in range(s.shape[0]):  # W = S x1 U1 x2 U2 x3 U3, one core entry at a time
                for b in range(s.shape[1]):
                    for c in range(s.shape[2]):
                        w += s[a, b, c] * u1[:, a, None, None] * u2[None, :, b, None] * u3[None, None, :, c]
            torch.testing.assert_close(layer.weight(), w, atol=1e-6, rtol=1e-5)
        h = {t: x for t in "abc"}
        for layer in model.layers:
            w = layer.weight()
            h = {t: torch.relu(h[t] @ w[:, :, k] + layer.bias[k]) for k, t in enumerate("abc")}
        for t in "abc":
            torch.testing.assert_close(out.outputs[t], model.towers[t](h[t]).squeeze(-1), atol=1e-5, rtol=1e-5)


def test_tensor_factorization_tasks_differ_through_u3() -> None:
    tasks = tuple((f"task{k}", "binary") for k in range(4))
    model = build("tensor_factorization", make_schema(tasks=tasks), bottom_units=(8,), ranks=(4, 4, 4))
    layer = model.layers[0]
    assert layer.ranks[2] == 4
    u3 = layer.u_task.detach()
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(u3[i], u3[j])
    # Give every task the same tower: the outputs still differ, through the task-mode factor alone.
    with torch.no_grad():
        for t in model.task_names[1:]:
            model.towers[t].load_state_dict(model.towers["task0"].state_dict())
        layer.bias.copy_(layer.bias[0].expand_as(layer.bias))
    out = model(*make_batch()).outputs
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(out[f"task{i}"], out[f"task{j}"])
    # With equal U3 rows the tasks' weights (and outputs) are equal.
    with torch.no_grad():
        layer.u_task.copy_(layer.u_task[0].expand_as(layer.u_task))
    out = model(*make_batch()).outputs
    torch.testing.assert_close(out["task0"], out["task3"])


def test_tensor_factorization_ranks_are_clipped_to_the_mode_sizes() -> None:
    model = build("tensor_factorization", bottom_units=(16, 6), ranks=(100, 10, 9))
    n_tasks, in_dim = 2, len(CARDS) * 8 + N_NUM
    assert model.layers[0].ranks == (in_dim, 10, n_tasks)
    assert model.layers[1].ranks == (16, 6, n_tasks)
    with pytest.raises(ValueError, match="three ranks"):
        build("tensor_factorization", ranks=(4, 4))
    with pytest.raises(ValueError, match="three ranks"):
        build("tensor_factorization", ranks=(4, 0, 2))


def test_tensor_factorization_weight_has_the_fan_in_scale_of_linear() -> None:
    model = build("tensor_factorization", census_schema(3), seed=5, bottom_units=(128, 64))
    for layer in model.layers:
        w = layer.weight().detach()
        expected = 1.0 / math.sqrt(3 * layer.in_dim)  # nn.Linear's Uniform(+-1/sqrt(fan_in)) std
        assert abs(float(w.std()) / expected - 1) < 0.1, (layer.in_dim, float(w.std()), expected)
        assert abs(float(w.mean())) < 0.1 * expected


def test_tensor_factorization_has_fewer_parameters_than_separate_layers() -> None:
    for n_tasks in (2, 3):
        model = build("tensor_factorization", census_schema(n_tasks))
        (layer,) = model.layers
        in_dim = 31 * 8 + 7
        assert (layer.in_dim, layer.out_dim) == (in_dim, 128)
        separate = n_tasks * (in_dim * 128 + 128)
        assert n_params(layer) < separate / 3
        single = build("single_task", census_schema(n_tasks))
        assert n_params(model) < n_params(single)


def test_tensor_factorization_shares_the_factors_and_embedding() -> None:
    model = build("tensor_factorization")
    assert model.tasks_independent is False
    batch = make_batch()
    layer = model.layers[0]
    assert changed_tasks(model, model.embedding, batch) == {"t1", "t2"}
    with torch.no_grad():
        before = model(*batch).outputs
        layer.bias[1].add_(1.0)  # task t2's bias alone
        after = model(*batch).outputs
    assert torch.equal(before["t1"], after["t1"]) and not torch.allclose(before["t2"], after["t2"])


# --------------------------------------------------------------------------------------------------
# Sluice Networks


def sluice_as_single_task(model) -> None:
    """Every alpha the identity, every beta all on the last layer."""
    with torch.no_grad():
        for alpha in model.alphas:
            alpha.copy_(torch.eye(alpha.shape[0]))
        model.betas.zero_()
        model.betas[:, -1] = 1.0


def test_sluice_with_identity_alpha_and_last_layer_beta_is_a_per_task_mlp() -> None:
    schema = make_schema(tasks=(("a", "binary"), ("b", "regression"), ("c", "binary")))
    model = build("sluice", schema, units=(8, 8, 8), n_subspaces=2, tower_units=(5,))
    sluice_as_single_task(model)
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        for t in "abc":
            h = x
            for layer in model.layers:
                h = torch.relu(h @ layer[t].weight.T + layer[t].bias)
            torch.testing.assert_close(out.outputs[t], model.towers[t](h).squeeze(-1), atol=1e-5, rtol=1e-5)
    batch = (x_cat, x_num)
    assert changed_tasks(model, model.layers[0]["b"], batch) == {"b"}
    assert changed_tasks(model, model.layers[2]["c"], batch) == {"c"}


def test_sluice_forward_matches_a_manual_alpha_and_beta_computation() -> None:
    model = build("sluice", units=(6, 6), n_subspaces=3, tower_units=(4,))
    with torch.no_grad():  # arbitrary (not identity-like) units
        for alpha in model.alphas:
            alpha.copy_(torch.randn_like(alpha))
        model.betas.copy_(torch.tensor([[0.3, -1.2], [2.0, 0.5]]))
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    labels = model.subspace_labels()
    assert labels == ("t1/0", "t1/1", "t1/2", "t2/0", "t2/1", "t2/2")
    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        inputs = {"t1": x, "t2": x}
        layer_outputs = []
        for layer, alpha in zip(model.layers, model.alphas):
            raw = {t: torch.relu(layer[t](inputs[t])) for t in ("t1", "t2")}
            subspace = {label: raw[label[:2]][:, 2 * int(label[3]):2 * int(label[3]) + 2] for label in labels}
            mixed_sub = {row: sum(alpha[i, j] * subspace[col] for j, col in enumerate(labels))
                         for i, row in enumerate(labels)}
            inputs = {t: torch.cat([mixed_sub[f"{t}/{a}"] for a in range(3)], dim=1) for t in ("t1", "t2")}
            layer_outputs.append(inputs)
        for k, t in enumerate(("t1", "t2")):
            rep = model.betas[k, 0] * layer_outputs[0][t] + model.betas[k, 1] * layer_outputs[1][t]
            torch.testing.assert_close(out.outputs[t], model.towers[t](rep).squeeze(-1), atol=1e-5, rtol=1e-5)
    assert out.gates == {}


def test_sluice_initial_alpha_and_beta() -> None:
    model = build("sluice", make_schema(tasks=(("a", "binary"), ("b", "binary"), ("c", "binary"))),
                  units=(8, 8, 8, 8), n_subspaces=2)
    assert len(model.alphas) == 4
    for alpha in model.alphas:
        alpha = alpha.detach()
        assert alpha.shape == (6, 6)
        torch.testing.assert_close(alpha.diagonal(), torch.full((6,), 0.9))
        torch.testing.assert_close(alpha.sum(1), torch.ones(6))
        off = alpha[~torch.eye(6, dtype=torch.bool)]
        torch.testing.assert_close(off, torch.full_like(off, 0.1 / 5))
    torch.testing.assert_close(model.betas.detach(), torch.full((3, 4), 0.25))
    hp = model_hparams("sluice")
    assert (hp["units"], hp["n_subspaces"], hp["orthogonality_weight"]) == ((64, 64), 2, 0.0)


def test_sluice_alpha_and_beta_get_gradients_and_couple_the_tasks() -> None:
    model = build("sluice")
    out = model(*make_batch())
    out.outputs["t1"].sum().backward()
    for alpha in model.alphas:
        assert alpha.grad is not None and (alpha.grad != 0).any()
    assert (model.betas.grad[0] != 0).all()
    assert (model.betas.grad[1] == 0).all()  # task 2's beta does not reach task 1's output
    # Initial alphas mix the tasks: task 2's first layer reaches task 1's output.
    assert changed_tasks(model, model.layers[0]["t2"], make_batch()) == {"t1", "t2"}
    assert model.tasks_independent is False


def test_sluice_refuses_a_subspace_count_that_does_not_divide_the_width() -> None:
    with pytest.raises(ValueError, match=r"n_subspaces 3 does not divide the layer width 64"):
        build("sluice", units=(64, 64), n_subspaces=3)
    with pytest.raises(ValueError, match="same width"):
        build("sluice", units=(64, 32))
    with pytest.raises(ValueError, match="n_subspaces >= 2"):
        build("sluice", n_subspaces=1, orthogonality_weight=0.1)


def test_sluice_orthogonality_penalty_on_the_subspace_weights() -> None:
    assert build("sluice").regularization() is None
    model = build("sluice", units=(4, 4), n_subspaces=2, orthogonality_weight=0.5)
    expected = 0.0
    for layer in model.layers:
        for linear in layer.values():
            w = linear.weight.detach()
            expected += float(((w[:2] @ w[2:].T) ** 2).sum())
    penalty = model.regularization()
    assert value(penalty) == pytest.approx(0.5 * expected, rel=1e-5)
    penalty.backward()
    assert all(layer[t].weight.grad is not None for layer in model.layers for t in model.task_names)
    # Subspaces with orthogonal weight rows cost nothing.
    with torch.no_grad():
        for layer in model.layers:
            for linear in layer.values():
                rows = torch.zeros_like(linear.weight)
                rows[:2, 0], rows[2:, 1] = 1.0, -2.0
                linear.weight.copy_(rows)
    assert value(model.regularization()) == 0.0


def test_coupled_models_parameter_counts_on_a_census_sized_schema() -> None:
    """Default sizes stay within a factor of ~3 of MMoE's (params.yaml's comparability)."""
    mmoe = n_params(build("mmoe", census_schema()))
    for name in ("l2_constrained", "tensor_factorization", "sluice"):
        count = n_params(build(name, census_schema()))
        assert mmoe / 3.5 < count < mmoe * 1.5, (name, count, mmoe)
