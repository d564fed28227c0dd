"""Tests for the model zoo (``models``): the shared contract, checked for every registered model, and
the structure of each model (MMoE's input-selecting gates, CGC == one-level PLE, PLE's shared gate,
Single-Task's independence, the fused expert group and the offset embedding table).

Everything runs on a small hand-made schema; no data file is read.
"""

from __future__ import annotations


import pytest
import torch

import models
from models.layers import ExpertGroup, FeatureEmbedding, linear_by_input, mix
from models.registry import ModelError, model_hparams
from tests.model_helpers import BATCH, CARDS, N_NUM, build, changed_tasks, make_batch, make_schema

ALL_MODELS = models.list_models()
GATED = ("omoe", "mmoe", "ml_mmoe", "cgc", "ple")
SHARED_MODELS = ("shared_bottom", "asymmetric_sharing", "customized_sharing", "cross_stitch", "sluice", "omoe",
                 "mmoe", "ml_mmoe", "cgc", "ple", "tensor_factorization", "l2_constrained")


def assert_valid_output(model, out, task_names, batch=BATCH) -> None:
    assert isinstance(out, models.MTLOutput)
    assert list(out.outputs) == list(task_names)
    for name, value in out.outputs.items():
        assert value.shape == (batch,), name
        assert value.dtype == torch.float32
        assert torch.isfinite(value).all(), name
    for name, gate in out.gates.items():
        assert gate.ndim == 2 and gate.shape[0] == batch, name
        assert (gate >= 0).all(), name
        torch.testing.assert_close(gate.sum(-1), torch.ones(batch), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_the_paper_models() -> None:
    assert set(ALL_MODELS) >= {"single_task", "shared_bottom", "mmoe", "cgc", "ple"}
    assert ALL_MODELS == sorted(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_registered_class_knows_its_name(name: str) -> None:
    cls = models.get_model_class(name)
    assert cls.model_name == name
    assert issubclass(cls, models.MTLModel)
    # Every model passes the shared input hyperparameters on to MTLModel (params.yaml's model_common).
    assert {"embedding_dim": 8, "embedding_std": 0.01}.items() <= model_hparams(name).items()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_shared_input_hyperparameters_reach_the_embedding(name: str) -> None:
    model = build(name, schema=make_schema(cards=(400, 300)), embedding_dim=6, embedding_std=0.05)
    tables = [m.table.weight.detach() for m in model.modules() if isinstance(m, FeatureEmbedding)]
    assert tables and all(t.shape == (700, 6) for t in tables)
    for table in tables:  # 4,200 draws of N(0, 0.05^2): the sample std is within 5% of 0.05
        assert abs(float(table.std()) - 0.05) < 0.0025
        assert abs(float(table.mean())) < 0.003


def test_bad_shared_input_hyperparameters_are_refused() -> None:
    with pytest.raises(ValueError, match="embedding_std > 0"):
        build("mmoe", embedding_std=0.0)


def test_unknown_model_name_lists_registered_models() -> None:
    with pytest.raises(ModelError) as caught:
        models.create_model("no_such_model", make_schema())
    message = str(caught.value)
    assert "no_such_model" in message
    for name in ALL_MODELS:
        assert name in message


@pytest.mark.parametrize("name", ALL_MODELS)
def test_unknown_hyperparameter_lists_accepted_names(name: str) -> None:
    with pytest.raises(ModelError) as caught:
        models.create_model(name, make_schema(), not_a_knob=3)
    message = str(caught.value)
    assert "not_a_knob" in message
    accepted = model_hparams(name)
    assert accepted
    for key in accepted:
        assert key in message


def test_model_error_is_a_value_error() -> None:
    assert issubclass(ModelError, ValueError)


# --------------------------------------------------------------------------------------------------
# The contract, for every registered model


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_contract(name: str) -> None:
    model = build(name)
    out = model(*make_batch())
    assert_valid_output(model, out, ["t1", "t2"])
    assert model.task_names == ("t1", "t2")


@pytest.mark.parametrize("name", GATED)
def test_gated_models_report_gates(name: str) -> None:
    out = build(name)(*make_batch())
    assert out.gates
    assert all(g.shape[1] >= 2 for g in out.gates.values())


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("n_tasks", [2, 3])
def test_gate_experts_label_every_gate_column(name: str, n_tasks: int) -> None:
    tasks = tuple((f"task{k}", "binary") for k in range(n_tasks))
    model = build(name, make_schema(tasks=tasks))
    out, labels = model(*make_batch()), model.gate_experts()
    assert list(labels) == list(out.gates)
    for gate, columns in labels.items():
        assert len(columns) == out.gates[gate].shape[1], gate
        assert len(set(columns)) == len(columns), gate
        assert all(c.split("/")[0] in {*model.task_names, "shared"} for c in columns), gate


def test_ple_gate_experts_follow_eqs_6_and_7() -> None:
    labels = build("ple", n_task_experts=2, n_shared_experts=1).gate_experts()
    assert labels == {
        "level1/t1": ("t1/0", "t1/1", "shared/0"),
        "level1/t2": ("t2/0", "t2/1", "shared/0"),
        "level1/shared": ("t1/0", "t1/1", "t2/0", "t2/1", "shared/0"),
        "level2/t1": ("t1/0", "t1/1", "shared/0"),
        "level2/t2": ("t2/0", "t2/1", "shared/0"),
    }
    assert build("mmoe", n_experts=2).gate_experts() == {"t1": ("shared/0", "shared/1"), "t2": ("shared/0", "shared/1")}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_gate_rows_depend_on_the_input(name: str) -> None:
    out = build(name)(*make_batch())
    for gate_name, gate in out.gates.items():
        assert not torch.allclose(gate, gate[:1].expand_as(gate)), gate_name


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_parameter_gets_a_finite_nonzero_gradient(name: str) -> None:
    model = build(name)
    out = model(*make_batch())
    loss = sum(v.sum() for v in out.outputs.values())
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
        assert (param.grad != 0).any(), pname


@pytest.mark.parametrize("name", ALL_MODELS)
def test_same_seed_same_parameters_and_outputs(name: str) -> None:
    x_cat, x_num = make_batch()
    a, b, c = build(name, seed=7), build(name, seed=7), build(name, seed=8)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a)
    out_a, out_b = a(x_cat, x_num), b(x_cat, x_num)
    for task in out_a.outputs:
        assert torch.equal(out_a.outputs[task], out_b.outputs[task])
    for gate in out_a.gates:
        assert torch.equal(out_a.gates[gate], out_b.gates[gate])


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("n_tasks", [2, 3, 4])
def test_any_number_of_tasks(name: str, n_tasks: int) -> None:
    tasks = tuple((f"task{k}", "binary") for k in range(n_tasks))
    model = build(name, make_schema(tasks=tasks))
    out = model(*make_batch())
    assert_valid_output(model, out, [t for t, _ in tasks])


@pytest.mark.parametrize("name", ALL_MODELS)
def test_regression_tasks_mixed_with_binary(name: str) -> None:
    tasks = (("clicks", "regression"), ("buy", "binary"), ("dwell", "regression"))
    model = build(name, make_schema(tasks=tasks))
    out = model(*make_batch())
    assert_valid_output(model, out, ["clicks", "buy", "dwell"])
    assert [t.type for t in model.tasks] == ["regression", "binary", "regression"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_numeric_features_only(name: str) -> None:
    model = build(name, make_schema(cards=()))
    x_cat, x_num = make_batch(cards=())
    out = model(x_cat, x_num)
    assert_valid_output(model, out, ["t1", "t2"])
    sum(v.sum() for v in out.outputs.values()).backward()
    for pname, param in model.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("name", ALL_MODELS)
def test_categorical_features_only(name: str) -> None:
    model = build(name, make_schema(n_num=0))
    x_cat, x_num = make_batch(n_num=0)
    assert x_num.shape == (BATCH, 0)
    out = model(x_cat, x_num)
    assert_valid_output(model, out, ["t1", "t2"])


@pytest.mark.parametrize("name", ALL_MODELS)
def test_reserved_code_zero_and_largest_code_are_accepted(name: str) -> None:
    model = build(name)
    _, x_num = make_batch()
    zeros = torch.zeros((BATCH, len(CARDS)), dtype=torch.int64)
    largest = torch.tensor([c - 1 for c in CARDS], dtype=torch.int64).expand(BATCH, -1)
    for x_cat in (zeros, largest):
        assert_valid_output(model, model(x_cat, x_num), ["t1", "t2"])


@pytest.mark.parametrize("name", ALL_MODELS)
def test_tasks_independent_flag_matches_parameter_sharing(name: str) -> None:
    """A model is task-independent exactly when no parameter influences two tasks' outputs and no
    loss term ties them (L2-Constrained)."""
    model = build(name)
    x_cat, x_num = make_batch()
    used = {}
    for task in ("t1", "t2"):
        model.zero_grad(set_to_none=True)
        model(x_cat, x_num).outputs[task].sum().backward()
        used[task] = {n for n, p in model.named_parameters() if p.grad is not None and (p.grad != 0).any()}
    assert used["t1"] and used["t2"]
    shared = used["t1"] & used["t2"]
    assert model.tasks_independent == (not shared and model.regularization() is None)


def test_tasks_independent_values() -> None:
    assert models.get_model_class("single_task").tasks_independent is True
    for name in SHARED_MODELS:
        assert models.get_model_class(name).tasks_independent is False, name
        assert build(name).tasks_independent is False, name


def test_single_task_changing_one_task_leaves_the_other_alone() -> None:
    model = build("single_task")
    x_cat, x_num = make_batch()
    before = model(x_cat, x_num).outputs
    with torch.no_grad():
        changed = 0
        for pname, param in model.named_parameters():
            if pname.split(".")[1] == "t1":
                param.add_(torch.randn_like(param))
                changed += 1
    assert changed >= 4  # embedding, bottom and tower
    after = model(x_cat, x_num).outputs
    assert torch.equal(after["t2"], before["t2"])
    assert not torch.allclose(after["t1"], before["t1"])


def test_shared_bottom_changing_the_bottom_changes_every_task() -> None:
    model = build("shared_bottom")
    x_cat, x_num = make_batch()
    before = model(x_cat, x_num).outputs
    with torch.no_grad():
        for param in model.bottom.parameters():
            param.add_(torch.randn_like(param))
    after = model(x_cat, x_num).outputs
    for task in ("t1", "t2"):
        assert not torch.allclose(after[task], before[task]), task


def test_duplicate_task_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate task names"):
        build("shared_bottom", make_schema(tasks=(("a", "binary"), ("a", "binary"))))


def test_unknown_task_type_is_refused() -> None:
    with pytest.raises(ValueError, match="classification"):
        build("shared_bottom", make_schema(tasks=(("a", "binary"), ("b", "classification"))))


# --------------------------------------------------------------------------------------------------
# MMoE


def test_mmoe_gates_are_softmax_of_a_linear_map_of_the_embedded_input() -> None:
    model = build("mmoe", n_experts=3)
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    assert sorted(out.gates) == ["t1", "t2"]
    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        assert x.shape == (BATCH, len(CARDS) * model.embedding_dim + N_NUM)
        experts = model.experts(x)
        for task in ("t1", "t2"):
            linear = model.gates[task].linear
            expected_gate = torch.softmax(x @ linear.weight.T + linear.bias, dim=-1)
            assert out.gates[task].shape == (BATCH, 3)
            torch.testing.assert_close(out.gates[task], expected_gate, atol=1e-6, rtol=1e-5)
            mixed = (expected_gate[:, :, None] * experts).sum(1)
            torch.testing.assert_close(out.outputs[task], model.towers[task](mixed).squeeze(-1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out.gates["t1"], out.gates["t2"])


def test_omoe_gate_is_one_for_every_task_and_reads_the_input() -> None:
    model = build("omoe", make_schema(tasks=(("a", "binary"), ("b", "binary"), ("c", "regression"))), n_experts=3)
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    assert list(out.gates) == ["a", "b", "c"]
    assert out.gates["a"] is out.gates["b"] is out.gates["c"]
    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        torch.testing.assert_close(out.gates["a"], torch.softmax(model.gate.linear(x), -1))
        mixed = mix(out.gates["a"], model.experts(x))
        for task in ("a", "b", "c"):
            torch.testing.assert_close(out.outputs[task], model.towers[task](mixed).squeeze(-1))


def test_ml_mmoe_with_one_level_is_mmoe() -> None:
    hp = dict(n_experts=3, expert_units=(8,), tower_units=(5,))
    ml, mmoe = build("ml_mmoe", n_levels=1, **hp), build("mmoe", **hp)
    renamed = {k.replace("experts.0.", "experts.").replace("gates.0.", "gates."): v for k, v in ml.state_dict().items()}
    mmoe.load_state_dict(renamed)  # same parameters, same shapes
    x_cat, x_num = make_batch()
    out_ml, out_mmoe = ml(x_cat, x_num), mmoe(x_cat, x_num)
    for task in ("t1", "t2"):
        torch.testing.assert_close(out_ml.outputs[task], out_mmoe.outputs[task])
        torch.testing.assert_close(out_ml.gates[f"level1/{task}"], out_mmoe.gates[task])


def test_ml_mmoe_every_gate_selects_on_the_input_and_level_two_experts_read_each_task() -> None:
    model = build("ml_mmoe", n_experts=3, expert_units=(8,), tower_units=(5,))
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    assert sorted(out.gates) == ["level1/t1", "level1/t2", "level2/t1", "level2/t2"]
    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        for task in ("t1", "t2"):
            for level in (0, 1):
                expected = torch.softmax(model.gates[level][task].linear(x), -1)
                torch.testing.assert_close(out.gates[f"level{level + 1}/{task}"], expected)
            h1 = mix(out.gates[f"level1/{task}"], model.experts[0](x))
            h2 = mix(out.gates[f"level2/{task}"], model.experts[1](h1))
            torch.testing.assert_close(out.outputs[task], model.towers[task](h2).squeeze(-1), atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# Asymmetric, Customized Sharing and Cross-Stitch


@pytest.mark.parametrize("fusion", ["concat", "sum", "mean"])
def test_asymmetric_sharing_feeds_the_source_bottom_to_the_other_towers(fusion: str) -> None:
    schema = make_schema(tasks=(("a", "binary"), ("b", "binary"), ("c", "regression")))
    model = build("asymmetric_sharing", schema, source_task="b", fusion=fusion, bottom_units=(8,))
    batch = make_batch()
    assert model.towers["b"][0].in_features == 8
    assert model.towers["a"][0].in_features == (16 if fusion == "concat" else 8)
    assert changed_tasks(model, model.bottoms["b"], batch) == {"a", "b", "c"}
    assert changed_tasks(model, model.bottoms["a"], batch) == {"a"}
    with torch.no_grad():
        x = model.embedding(*batch)
        own, source = model.bottoms["c"](x), model.bottoms["b"](x)
        fused = {"concat": torch.cat([own, source], -1), "sum": own + source, "mean": (own + source) / 2}[fusion]
        torch.testing.assert_close(model(*batch).outputs["c"], model.towers["c"](fused).squeeze(-1))


def test_asymmetric_sharing_defaults_to_the_main_task_and_refuses_unknown_names() -> None:
    assert build("asymmetric_sharing").source_task == "t1"
    with pytest.raises(ValueError, match="'ctr' is not a task.*t1"):
        build("asymmetric_sharing", source_task="ctr")
    with pytest.raises(ValueError, match="fusion 'max'"):
        build("asymmetric_sharing", fusion="max")


def test_customized_sharing_towers_read_the_shared_and_their_own_bottom() -> None:
    model = build("customized_sharing", shared_units=(8,), task_units=(6,))
    batch = make_batch()
    assert model.towers["t1"][0].in_features == 14
    assert changed_tasks(model, model.task_bottoms["t1"], batch) == {"t1"}
    assert changed_tasks(model, model.shared_bottom, batch) == {"t1", "t2"}


def test_cross_stitch_with_identity_units_is_single_task() -> None:
    schema = make_schema(tasks=(("a", "binary"), ("b", "regression"), ("c", "binary")))
    stitch = build("cross_stitch", schema, units=(8,), tower_units=(5,))
    single = build("single_task", schema, seed=3, bottom_units=(8,), tower_units=(5,))
    with torch.no_grad():
        stitch.stitches[0].copy_(torch.eye(3))
    state = {k.replace("bottoms.", "layers.0."): v for k, v in single.state_dict().items()}
    missing, unexpected = stitch.load_state_dict(state, strict=False)
    assert missing == ["stitches.0"] and unexpected == []
    batch = make_batch()
    out_stitch, out_single = stitch(*batch), single(*batch)
    for task in ("a", "b", "c"):
        torch.testing.assert_close(out_stitch.outputs[task], out_single.outputs[task])
    assert changed_tasks(stitch, stitch.layers[0]["a"], batch) == {"a"}


def test_cross_stitch_units_mix_the_tasks() -> None:
    model = build("cross_stitch", units=(8, 6), stitch_self=0.7)
    for unit in model.stitches:
        torch.testing.assert_close(unit.detach(), torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    batch = make_batch()
    assert changed_tasks(model, model.layers[0]["t1"], batch) == {"t1", "t2"}


# --------------------------------------------------------------------------------------------------
# CGC and PLE


def test_one_level_ple_has_the_structure_of_cgc() -> None:
    schema = make_schema(tasks=(("a", "binary"), ("b", "regression"), ("c", "binary")))
    hp = dict(n_task_experts=3, n_shared_experts=1, expert_units=(8, 6), tower_units=(5,))
    cgc = build("cgc", schema, seed=1, **hp)
    ple = build("ple", schema, seed=2, n_levels=1, **hp)
    cgc_state, ple_state = cgc.state_dict(), ple.state_dict()
    assert list(cgc_state) == list(ple_state)
    assert {k: v.shape for k, v in cgc_state.items()} == {k: v.shape for k, v in ple_state.items()}

    x_cat, x_num = make_batch()
    ple.load_state_dict(cgc_state)
    out_cgc, out_ple = cgc(x_cat, x_num), ple(x_cat, x_num)
    assert list(out_cgc.gates) == list(out_ple.gates) == ["level1/a", "level1/b", "level1/c"]
    for task in ("a", "b", "c"):
        assert torch.equal(out_cgc.outputs[task], out_ple.outputs[task])
    for gate in out_cgc.gates:
        assert torch.equal(out_cgc.gates[gate], out_ple.gates[gate])
        assert out_cgc.gates[gate].shape == (BATCH, 3 + 1)


def test_cgc_has_no_shared_gate() -> None:
    out = build("cgc")(*make_batch())
    assert sorted(out.gates) == ["level1/t1", "level1/t2"]


def test_ple_default_has_a_shared_gate_on_level_one_only() -> None:
    n_tasks, m_task, m_shared = 3, 3, 2
    schema = make_schema(tasks=tuple((f"t{k}", "binary") for k in range(1, n_tasks + 1)))
    model = build("ple", schema, n_task_experts=m_task, n_shared_experts=m_shared)
    assert model_hparams("ple")["n_levels"] == 2
    assert len(model.levels) == 2
    out = model(*make_batch())
    assert "level1/shared" in out.gates
    assert "level2/shared" not in out.gates
    assert out.gates["level1/shared"].shape == (BATCH, n_tasks * m_task + m_shared)
    expected_names = {f"level{j}/t{k}" for j in (1, 2) for k in range(1, n_tasks + 1)} | {"level1/shared"}
    assert set(out.gates) == expected_names
    for j in (1, 2):
        for k in range(1, n_tasks + 1):
            assert out.gates[f"level{j}/t{k}"].shape == (BATCH, m_task + m_shared)


def test_ple_three_levels_has_shared_gates_on_all_but_the_last() -> None:
    out = build("ple", n_levels=3)(*make_batch())
    assert {g for g in out.gates if g.endswith("/shared")} == {"level1/shared", "level2/shared"}


def test_ple_needs_at_least_one_level() -> None:
    with pytest.raises(ValueError, match="n_levels"):
        build("ple", n_levels=0)


def test_ple_forward_matches_a_manual_computation_of_eqs_6_and_7() -> None:
    """Level 2's task gates select on level 1's task outputs; its shared experts read level 1's
    shared-gate output (a mix over every expert of level 1)."""
    model = build("ple", n_task_experts=2, n_shared_experts=3, expert_units=(8,), tower_units=(4,))
    x_cat, x_num = make_batch()
    out = model(x_cat, x_num)
    tasks = ("t1", "t2")

    def softmax_gate(gate, selector):
        return torch.softmax(selector @ gate.linear.weight.T + gate.linear.bias, dim=-1)

    with torch.no_grad():
        x = model.embedding(x_cat, x_num)
        one, two = model.levels
        own1 = {t: one.task_experts[t](x) for t in tasks}
        shared1 = one.shared_experts(x)
        gates1 = {t: softmax_gate(one.task_gates[t], x) for t in tasks}
        task_out1 = {t: (gates1[t][:, :, None] * torch.cat([own1[t], shared1], 1)).sum(1) for t in tasks}
        gate_s = softmax_gate(one.shared_gate, x)
        shared_out1 = (gate_s[:, :, None] * torch.cat([own1["t1"], own1["t2"], shared1], 1)).sum(1)
        assert two.shared_gate is None
        shared2 = two.shared_experts(shared_out1)
        for t in tasks:
            gate2 = softmax_gate(two.task_gates[t], task_out1[t])
            rep = (gate2[:, :, None] * torch.cat([two.task_experts[t](task_out1[t]), shared2], 1)).sum(1)
            torch.testing.assert_close(out.gates[f"level1/{t}"], gates1[t], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(out.gates[f"level2/{t}"], gate2, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(out.outputs[t], model.towers[t](rep).squeeze(-1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.gates["level1/shared"], gate_s, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# Layers


def test_expert_group_matches_a_loop_over_experts() -> None:
    torch.manual_seed(3)
    in_dim, n_experts, units = 7, 3, (6, 5)
    group = ExpertGroup(in_dim, n_experts, units)
    assert group.first.weight.shape == (n_experts * units[0], in_dim)
    assert group.weights[0].shape == (n_experts, units[0], units[1])
    assert group.out_dim == units[1]
    x = torch.randn(9, in_dim)
    got = group(x)
    assert got.shape == (9, n_experts, units[1])
    with torch.no_grad():
        for e in range(n_experts):
            rows = slice(e * units[0], (e + 1) * units[0])
            h = torch.relu(x @ group.first.weight[rows].T + group.first.bias[rows])
            h = torch.relu(h @ group.weights[0][e] + group.biases[0][e])
            torch.testing.assert_close(got[:, e], h, atol=1e-6, rtol=1e-5)
    # The experts differ (they are not one expert repeated).
    assert not torch.allclose(got[:, 0], got[:, 1])


def test_expert_group_single_layer_and_bad_arguments() -> None:
    torch.manual_seed(0)
    group = ExpertGroup(4, 2, (3,))
    x = torch.randn(5, 4)
    expected = torch.relu(group.first(x)).view(5, 2, 3)
    torch.testing.assert_close(group(x), expected)
    with pytest.raises(ValueError):
        ExpertGroup(4, 0, (3,))
    with pytest.raises(ValueError):
        ExpertGroup(4, 2, ())


def test_linear_by_input_equals_each_layer_on_its_input_with_one_product_per_input(monkeypatch) -> None:
    torch.manual_seed(0)
    x, z = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5, requires_grad=True)
    layers = [torch.nn.Linear(5, n) for n in (3, 4, 2, 1)]
    calls = [(x, layers[0]), (z, layers[1]), (x, layers[2]), (x, layers[3])]
    products = []
    real_linear = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, "linear", lambda i, w, b=None: products.append(w.shape) or real_linear(i, w, b))
    fused = linear_by_input(calls)
    assert products == [(6, 5), (4, 5)]  # x's three layers as one (3 + 2 + 1)-row weight; z's layer alone
    monkeypatch.undo()
    for (inp, layer), out in zip(calls, fused):
        torch.testing.assert_close(out, layer(inp), rtol=0, atol=1e-6)
    # Gradients: each layer's own parameters get its own part; the shared input's is the sum of its layers'.
    sum(o.square().sum() for o in fused).backward()
    grads = [(p.grad.clone(), q.grad.clone()) for p, q in ((layer.weight, layer.bias) for layer in layers)]
    x_grad, z_grad = x.grad.clone(), z.grad.clone()
    for t in (x, z, *(p for layer in layers for p in layer.parameters())):
        t.grad = None
    sum(layer(inp).square().sum() for inp, layer in calls).backward()
    for (w, b), layer in zip(grads, layers):
        torch.testing.assert_close(w, layer.weight.grad, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b, layer.bias.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x_grad, x.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z_grad, z.grad, rtol=1e-5, atol=1e-6)


def test_linear_by_input_groups_by_tensor_identity_not_by_value() -> None:
    x = torch.randn(4, 3)
    same_values = x.clone()
    layers = [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]
    a, b = linear_by_input([(x, layers[0]), (same_values, layers[1])])
    torch.testing.assert_close(a, layers[0](x), rtol=0, atol=0)  # two inputs: each layer computed alone, exactly
    torch.testing.assert_close(b, layers[1](same_values), rtol=0, atol=0)


def test_mix_is_the_gate_weighted_sum_of_experts() -> None:
    weights = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    experts = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    torch.testing.assert_close(mix(weights, experts), torch.tensor([[2.5, 3.5], [5.0, 6.0]]))


def test_feature_embedding_uses_per_feature_offsets() -> None:
    cards, dim = (3, 4, 2), 5
    torch.manual_seed(0)
    emb = FeatureEmbedding(cards, n_numeric=2, dim=dim)
    assert emb.table.weight.shape == (3 + 4 + 2, dim)
    assert emb.out_dim == 3 * dim + 2
    assert emb.offsets.tolist() == [0, 3, 7]
    x_cat = torch.tensor([[0, 0, 0], [2, 3, 1], [1, 2, 0]])
    x_num = torch.tensor([[0.5, -1.0], [2.0, 3.0], [0.0, 0.0]])
    out = emb(x_cat, x_num)
    assert out.shape == (3, 3 * dim + 2)
    table = emb.table.weight.detach()
    for row in range(3):
        for f, offset in enumerate((0, 3, 7)):
            c = int(x_cat[row, f])
            assert torch.equal(out[row, f * dim:(f + 1) * dim], table[offset + c]), (row, f)
        assert torch.equal(out[row, 3 * dim:], x_num[row])
    # Feature 1 code 0 and feature 0 code 3 would collide without offsets; with them, distinct rows.
    assert not torch.equal(out[0, dim:2 * dim], out[0, :dim])
