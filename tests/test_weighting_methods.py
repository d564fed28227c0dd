"""The loss weighting and gradient balancing methods of replication/weighting against their papers'
formulas, computed by hand on a two-task problem whose gradients are known in closed form: a shared
parameter vector theta with L_1 = ||theta - a||^2 / 2 and L_2 = ||theta - b||^2 / 2, so g_1 = theta - a and
g_2 = theta - b; then every method trains a model, resumes from a checkpoint to the same numbers where
it has state, and checks its parameters."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from scipy.optimize import minimize_scalar
from torch import nn
from torchjd.aggregation import MGDA, IMTLG, PCGrad, AlignedMTL, CAGrad

from models.base import TaskSpec
from replication.config import ConfigError
from replication.data.processed import Processed
from replication.records import without_timings
from replication.training import train_seed
from replication.weighting import available_weightings, weighting_class
from tests.test_weighting import config, data  # noqa: F401 (data: the tiny synthetic fixture)

CPU = torch.device("cpu")
TASKS = (TaskSpec("task1", "regression"), TaskSpec("task2", "regression"))
METHODS = sorted(set(available_weightings()) - {"static"})
GRADIENT_METHODS = ["aligned_mtl", "cagrad", "graddrop", "imtl_g", "mgda", "nash_mtl", "pcgrad", "upgrad"]
STATEFUL = ["dwa", "famo", "gradnorm", "uncertainty"]
pytestmark = pytest.mark.usefixtures("one_thread")
# The conflicting pair of the tests: cos(g_1, g_2) = -1 / sqrt(1.01)
G1, G2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 0.1], dtype=torch.float64)


class TwoTasks(nn.Module):
    """theta (shared) and one parameter of task 1's own (``own``); float64 so that the formulas
    compare tightly."""

    def __init__(self, theta=(0.0, 0.0), own: float = 3.0) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta, dtype=torch.float64))
        self.own = nn.Parameter(torch.tensor([own], dtype=torch.float64))

    def shared_parameters(self) -> list[nn.Parameter]:
        return [self.theta]

    def losses(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """L_1 = ||theta - a||^2 / 2 + own^2 / 2 (its own parameter's term), L_2 = ||theta - b||^2 / 2."""
        return torch.stack([0.5 * ((self.theta - a) ** 2).sum() + 0.5 * (self.own ** 2).sum(),
                            0.5 * ((self.theta - b) ** 2).sum()])


def method(name: str, model: nn.Module | None = None, **params):
    weighting = weighting_class(name)(TASKS, config(weighting=name, weighting_params=params, lr=0.01), CPU,
                                      model if model is not None else TwoTasks())
    weighting.start_epoch(1)
    return weighting


def conflicting_step(name: str, **params) -> tuple[torch.Tensor, torch.Tensor]:
    """theta = 0, a = -g_1, b = -g_2: the gradients G1 and G2. theta's gradient and the weights noted."""
    model = TwoTasks()
    weighting = method(name, model, **params)
    weighting.backward(model.losses(-G1, -G2), None)
    return model.theta.grad, weighting.epoch_weights()


def weights_of(noted: dict[str, float]) -> torch.Tensor:
    return torch.tensor([noted["task1"], noted["task2"]], dtype=torch.float64)


# Gradient methods on the conflicting pair, against the papers' formulas worked by hand

def test_pcgrad_projects_each_conflicting_gradient_off_the_other() -> None:
    grad, noted = conflicting_step("pcgrad")
    g1_pc = G1 - (G1 @ G2) / (G2 @ G2) * G2  # Yu et al. Alg. 1: (1 - 1/1.01, 0.1/1.01)
    g2_pc = G2 - (G1 @ G2) / (G1 @ G1) * G1  # (0, 0.1)
    torch.testing.assert_close(grad, g1_pc + g2_pc, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, torch.tensor([1 - 1 / 1.01, 0.1 / 1.01 + 0.1], dtype=torch.float64),
                               rtol=0, atol=1e-12)
    assert not torch.allclose(grad, G1 + G2)  # the plain sum is (0, 0.1)
    torch.testing.assert_close(weights_of(noted), torch.tensor([2.0, 1 + 1 / 1.01], dtype=torch.float64))


def test_mgda_takes_the_min_norm_point_of_the_gradients_hull() -> None:
    grad, noted = conflicting_step("mgda")
    alpha = (G2 @ (G2 - G1)) / ((G1 - G2) @ (G1 - G2))  # Sener & Koltun's two-task closed form: 2.01 / 4.01
    torch.testing.assert_close(grad, alpha * G1 + (1 - alpha) * G2, rtol=0, atol=1e-9)
    torch.testing.assert_close(weights_of(noted), torch.stack([alpha, 1 - alpha]), rtol=0, atol=1e-7)
    hull = torch.stack([w * G1 + (1 - w) * G2 for w in torch.linspace(0, 1, 1001, dtype=torch.float64)])
    assert grad.norm() <= hull.norm(dim=1).min() + 1e-12 and grad.norm() < ((G1 + G2) / 2).norm()


def test_upgrad_averages_the_projections_onto_the_dual_cone() -> None:
    grad, noted = conflicting_step("upgrad", reg_eps=0.0)
    # Each gradient is projected onto {x: g_1.x >= 0, g_2.x >= 0}: with two conflicting gradients, onto
    # the other's orthogonal hyperplane (PCGrad's vectors); UPGrad averages them.
    projections = [G1 - (G1 @ G2) / (G2 @ G2) * G2, G2 - (G1 @ G2) / (G1 @ G1) * G1]
    expected = (projections[0] + projections[1]) / 2
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-9)
    assert G1 @ grad >= 0 and G2 @ grad >= 0  # no task's loss increases to first order
    torch.testing.assert_close(weights_of(noted), torch.tensor([1.0, (1 + 1 / 1.01) / 2], dtype=torch.float64),
                               rtol=0, atol=1e-7)
    # torchjd's default regularisation (reg_eps 1e-4 on the trace-normalised Gramian) moves it little
    regularised, _ = conflicting_step("upgrad")
    torch.testing.assert_close(regularised, expected, rtol=0, atol=1e-3)


def test_upgrad_is_the_mean_when_no_gradients_conflict() -> None:
    model = TwoTasks()
    weighting = method("upgrad", model, reg_eps=0.0)
    weighting.backward(model.losses(torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -2.0])), None)
    torch.testing.assert_close(model.theta.grad, torch.tensor([0.5, 1.0], dtype=torch.float64), rtol=0, atol=1e-12)


def test_imtl_g_equalises_the_projections_on_the_unit_gradients() -> None:
    grad, noted = conflicting_step("imtl_g")
    # Liu et al. (ICLR 2021) Sec. 3.2, two tasks: alpha_2 = g_1.u / (d.u), d = g_1 - g_2, u = u_1 - u_2
    u1, u2 = G1 / G1.norm(), G2 / G2.norm()
    alpha2 = (G1 @ (u1 - u2)) / ((G1 - G2) @ (u1 - u2))
    torch.testing.assert_close(weights_of(noted), torch.stack([1 - alpha2, alpha2]), rtol=0, atol=1e-7)
    torch.testing.assert_close(grad, (1 - alpha2) * G1 + alpha2 * G2, rtol=0, atol=1e-9)
    torch.testing.assert_close(grad @ u1, grad @ u2, rtol=0, atol=1e-9)


def test_cagrad_maximises_the_worst_improvement_in_a_ball_around_the_mean() -> None:
    c = 0.4
    grad, noted = conflicting_step("cagrad", c=c)
    g0 = (G1 + G2) / 2
    sqrt_phi = c * g0.norm()

    def dual(w: float) -> float:  # Liu et al. (NeurIPS 2021) Alg. 1: min_w g_w.g0 + sqrt(phi) ||g_w||
        gw = w * G1 + (1 - w) * G2
        return float(gw @ g0 + sqrt_phi * gw.norm())

    w = minimize_scalar(dual, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-12}).x
    gw = w * G1 + (1 - w) * G2
    expected = g0 + sqrt_phi / gw.norm() * gw
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-4)  # Clarabel's tolerance on a flat dual
    assert not torch.allclose(grad, G1 + G2, atol=1e-3) and not torch.allclose(grad, g0, atol=1e-3)
    torch.testing.assert_close(weights_of(noted), 0.5 + sqrt_phi / gw.norm() * torch.tensor([w, 1 - w]),
                               rtol=0, atol=1e-4)


def test_aligned_mtl_sums_the_gradients_aligned_to_an_orthogonal_equal_norm_system() -> None:
    grad, noted = conflicting_step("aligned_mtl")
    J = torch.stack([G1, G2])
    eigenvalues, V = torch.linalg.eigh(J @ J.T)  # Senushkin et al. Alg. 1: B = sqrt(lambda_min) V L^-1/2 V^T
    B = eigenvalues.min().sqrt() * V @ torch.diag(eigenvalues.rsqrt()) @ V.T
    alpha = B @ torch.tensor([0.5, 0.5], dtype=torch.float64)
    torch.testing.assert_close(weights_of(noted), alpha, rtol=0, atol=1e-7)
    torch.testing.assert_close(grad, alpha @ J, rtol=0, atol=1e-9)
    aligned = B @ J  # the aligned gradients: orthogonal, of equal norm
    torch.testing.assert_close(aligned @ aligned.T, eigenvalues.min() * torch.eye(2, dtype=torch.float64))


def test_nash_mtl_solves_the_bargaining_condition_then_clips_the_update() -> None:
    # Orthogonal gradients g_1 = (1, 0), g_2 = (0, 2): G a = 1 / a gives a_k = 1 / ||g_k|| (Navon et al.
    # Alg. 1; the Gramian's normalisation does not change a), so the update (1, 1), clipped to max_norm 1.
    model = TwoTasks()
    weighting = method("nash_mtl", model, max_norm=0.0)
    weighting.backward(model.losses(torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -2.0])), None)
    torch.testing.assert_close(weights_of(weighting.epoch_weights()), torch.tensor([1.0, 0.5], dtype=torch.float64),
                               rtol=1e-4, atol=0)
    model = TwoTasks()
    weighting = method("nash_mtl", model)
    weighting.backward(model.losses(torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -2.0])), None)
    torch.testing.assert_close(model.theta.grad, torch.full((2,), 2 ** -0.5, dtype=torch.float64), rtol=1e-4, atol=0)


def test_graddrop_keeps_one_sign_per_coordinate_by_its_purity() -> None:
    # Coordinate 2: only g_2 is nonzero (0.1 > 0), purity 1: kept. Coordinate 1: +1 and -1, purity 1/2:
    # the positive sign survives when the uniform draw U < 1/2 (Chen et al. Alg. 1, lines 10-15).
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        u = torch.rand(2, dtype=torch.float64)
        torch.manual_seed(seed)
        grad, noted = conflicting_step("graddrop")
        expected = torch.tensor([1.0 if 0.5 > u[0] else -1.0, 0.1], dtype=torch.float64)
        torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)
        assert noted == {"task1": 1.0, "task2": 1.0}
        seen.add(float(grad[0]))
    assert seen == {1.0, -1.0}
    grad, _ = conflicting_step("graddrop", leak=1.0)  # everything leaks through: the plain sum
    torch.testing.assert_close(grad, G1 + G2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, aggregator", [("pcgrad", PCGrad()), ("mgda", MGDA()), ("imtl_g", IMTLG()),
                                              ("aligned_mtl", AlignedMTL()), ("cagrad", CAGrad(c=0.4))])
def test_wrapped_methods_give_torchjds_aggregation(name: str, aggregator) -> None:
    model = TwoTasks(theta=(0.3, -0.2))
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([-1.5, 0.5])
    method(name, model).backward(model.losses(a, b), None)
    theta = model.theta.detach()
    torch.testing.assert_close(model.theta.grad, aggregator(torch.stack([theta - a, theta - b])), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_task_parameters_get_the_plain_sum_and_every_parameter_the_penalty(name: str) -> None:
    torch.manual_seed(0)
    plain = TwoTasks(theta=(0.3, -0.2), own=3.0)
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([-1.5, 0.5])
    weighting = method(name, plain)
    weighting.backward(plain.losses(a, b), None)
    torch.manual_seed(0)
    penalised = TwoTasks(theta=(0.3, -0.2), own=3.0)
    weighting = method(name, penalised)
    reported = weighting.backward(penalised.losses(a, b), 0.1 * sum((p ** 2).sum() for p in penalised.parameters()))
    # own's gradient is the plain sum's, 3.0 (L_1's term), plus the penalty's 0.2 * 3.0
    torch.testing.assert_close(plain.own.grad, torch.tensor([3.0], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(penalised.own.grad, torch.tensor([3.6], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(penalised.theta.grad, plain.theta.grad + 0.2 * penalised.theta.detach(),
                               rtol=0, atol=1e-12)
    noted = weights_of(weighting.epoch_weights())
    losses = penalised.losses(a, b).detach()
    penalty = 0.1 * (0.3 ** 2 + 0.2 ** 2 + 9.0)
    assert reported.item() == pytest.approx(float(noted @ losses) + penalty, rel=1e-6)


# Loss weighting methods, by hand

def test_uncertainty_weighs_by_learned_log_variances_and_steps_them_with_its_adam() -> None:
    model = TwoTasks()
    weighting = method("uncertainty", model)  # lr 0.01
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -3.0])  # L = (0.5 + 4.5, 4.5) with own = 3
    losses = model.losses(a, b)
    reported = weighting.backward(losses, None)
    torch.testing.assert_close(model.theta.grad, 0.5 * torch.tensor([1.0, 3.0], dtype=torch.float64))
    # Kendall et al. Eq. 7 with s = 0: d/ds_k (exp(-s_k) L_k / 2 + s_k / 2) = (1 - L_k) / 2
    torch.testing.assert_close(weighting.uw.log_var.grad, torch.tensor([(1 - 5.0) / 2, (1 - 4.5) / 2]))
    assert reported.item() == pytest.approx(0.5 * 5.0 + 0.5 * 4.5)
    weighting.step()  # Adam's first step moves each s_k by lr against its gradient's sign
    torch.testing.assert_close(weighting.uw.log_var.detach(), torch.tensor([0.01, 0.01]))
    model.zero_grad()
    weighting.backward(model.losses(a, b), None)
    w = 0.5 * math.exp(-0.01)
    torch.testing.assert_close(model.theta.grad, w * torch.tensor([1.0, 3.0], dtype=torch.float64), rtol=1e-6, atol=0)
    assert weighting.epoch_weights()["task1"] == pytest.approx((0.5 + w) / 2, rel=1e-6)


def test_gradnorm_moves_the_weights_towards_equal_gradient_norms_scaled_by_training_rates() -> None:
    model = TwoTasks()
    weighting = method("gradnorm", model, alpha=1.5)  # lr 0.01
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -3.0])  # ||g_1|| = 1 < ||g_2|| = 3
    weighting.backward(model.losses(a, b), None)
    torch.testing.assert_close(model.theta.grad, torch.tensor([1.0, 3.0], dtype=torch.float64))  # w = 1
    # First batch: r_k = 1, target = mean(G) = 2; dL_grad/dw_k = sign(G_k - 2) ||g_k||
    torch.testing.assert_close(weighting.weights.grad, torch.tensor([-1.0, 3.0]))
    weighting.step()  # Adam's first step: w -= lr * sign; the sum stays 2
    torch.testing.assert_close(weighting.weights.detach(), torch.tensor([1.01, 0.99]))
    # Second batch: theta = (0.5, 0.5), so g_1 = (1.5, 0.5), g_2 = (0.5, 3.5); L = (1.25 + 4.5, 6.25)
    model.zero_grad()
    with torch.no_grad():
        model.theta.copy_(torch.tensor([0.5, 0.5]))
    losses = model.losses(a, b)
    weighting.backward(losses, None)
    g1, g2 = torch.tensor([1.5, 0.5], dtype=torch.float64), torch.tensor([0.5, 3.5], dtype=torch.float64)
    torch.testing.assert_close(model.theta.grad, 1.01 * g1 + 0.99 * g2)
    norms = torch.stack([g1.norm(), g2.norm()])
    G = torch.tensor([1.01, 0.99], dtype=torch.float64) * norms
    rate = torch.tensor([5.75 / 5.0, 6.25 / 4.5], dtype=torch.float64)
    target = G.mean() * (rate / rate.mean()) ** 1.5
    torch.testing.assert_close(weighting.weights.grad, (torch.sign(G - target) * norms).float())
    weighting.step()
    assert weighting.weights.sum().item() == pytest.approx(2.0, abs=1e-6)


def test_dwa_weights_by_the_last_two_epochs_loss_ratios() -> None:
    model = TwoTasks()
    weighting = method("dwa", model, temperature=2.0)
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -3.0])
    for epoch, losses in ((1, [2.0, 1.0]), (2, [1.0, 0.9])):
        weighting.start_epoch(epoch)
        model.zero_grad()
        weighting.backward(model.losses(a, b), None)
        torch.testing.assert_close(model.theta.grad, torch.tensor([1.0, 3.0], dtype=torch.float64))
        assert weighting.epoch_weights() == {"task1": 1.0, "task2": 1.0}
        weighting.end_epoch(losses)
    weighting.start_epoch(3)  # Liu et al. Eq. 7: w = (0.5, 0.9), lambda = 2 softmax(w / 2)
    e1, e2 = math.exp(0.25), math.exp(0.45)
    lam = torch.tensor([2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)], dtype=torch.float64)
    model.zero_grad()
    weighting.backward(model.losses(a, b), None)
    torch.testing.assert_close(model.theta.grad, lam * torch.tensor([1.0, 3.0], dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(weights_of(weighting.epoch_weights()), lam, rtol=1e-6, atol=0)


def test_rlw_draws_softmax_of_standard_normal_weights_from_the_global_generator() -> None:
    model = TwoTasks()
    weighting = method("rlw", model)
    torch.manual_seed(7)
    lam = torch.softmax(torch.randn(2), dim=0).double()
    torch.manual_seed(7)
    weighting.backward(model.losses(torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -3.0])), None)
    torch.testing.assert_close(model.theta.grad, lam * torch.tensor([1.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(weights_of(weighting.epoch_weights()), lam)


def test_famo_combines_log_losses_and_updates_its_logits_from_the_next_batchs_losses() -> None:
    model = TwoTasks()
    weighting = method("famo", model)  # lr 0.025, weight decay 0.001
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([0.0, -3.0])
    losses = model.losses(a, b)  # (5, 4.5)
    weighting.backward(losses, None)
    # Liu et al. Alg. 1 with z = (1/2, 1/2): the update is sum_k (z_k / L_k) g_k / sum_k (z_k / L_k)
    w0 = torch.tensor([1 / 5.0, 1 / 4.5], dtype=torch.float64)
    w0 = w0 / w0.sum()
    torch.testing.assert_close(model.theta.grad, w0 * torch.tensor([1.0, 3.0], dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(weights_of(weighting.epoch_weights()), w0, rtol=1e-6, atol=0)
    # Next batch: losses (4, 4.5); delta = log before - log after = (log 1.25, 0); the logits' gradient
    # J_softmax(w)^T delta = z (delta - z.delta) = (+, -) log(1.25) / 4: Adam's first step, -lr * sign
    model.zero_grad()
    with torch.no_grad():
        model.own.copy_(torch.tensor([math.sqrt(7.0)]))  # L_1 = 0.5 + 3.5
    weighting.backward(model.losses(a, b), None)
    torch.testing.assert_close(weighting.famo._w.detach(), torch.tensor([-0.025, 0.025]))
    z = torch.softmax(torch.tensor([-0.025, 0.025], dtype=torch.float64), dim=0)
    w1 = z / torch.tensor([4.0, 4.5], dtype=torch.float64)
    w1 = w1 / w1.sum()
    torch.testing.assert_close(model.theta.grad, w1 * torch.tensor([1.0, 3.0], dtype=torch.float64), rtol=1e-5, atol=0)


# Every method in training

@pytest.mark.parametrize("name", METHODS)
def test_method_trains_mmoe_and_logs_its_weights_each_epoch(name: str, data: Processed) -> None:
    cfg = config(max_epochs=2, weighting=name)
    cfg.validate("train")
    record, _ = train_seed("mmoe", {}, data, cfg, 0, CPU, show_epochs=False)
    assert record["status"] == "ok" and record["train"]["weighting"] == name
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    for entry in record["history"]:
        assert set(entry["loss_weights"]) == {"task1", "task2"}
        assert all(math.isfinite(w) and w != 0 for w in entry["loss_weights"].values())
        assert math.isfinite(entry["train_loss"])


@pytest.mark.parametrize("name", METHODS)
def test_method_refuses_unknown_parameters(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"\['nope'\] are not parameters of {name} \(it accepts: "):
        config(weighting=name, weighting_params={"nope": 1}).validate("train")
    for param, value in weighting_class(name).defaults.items():
        config(weighting=name, weighting_params={param: value}).validate("train")


@pytest.mark.parametrize("name", ["pcgrad", "upgrad", "gradnorm"])
def test_gradient_methods_train_a_model_that_shares_nothing(name: str, data: Processed) -> None:
    # L2-Constrained shares no parameter (its tasks are tied by its penalty): the plain sum, weights 1
    static, _ = train_seed("l2_constrained", {}, data, config(max_epochs=1), 0, CPU, show_epochs=False)
    record, _ = train_seed("l2_constrained", {}, data, config(max_epochs=1, weighting=name), 0, CPU, show_epochs=False)
    assert record["history"][0]["loss_weights"] == {"task1": 1.0, "task2": 1.0}
    assert record["history"][0]["train_loss"] == pytest.approx(static["history"][0]["train_loss"], rel=1e-6)


def resumed_and_whole(name: str, data: Processed, folder: Path) -> tuple[dict, dict]:
    """A 3-epoch run of MMoE under method ``name`` trained straight, and stopped after 2 epochs with a
    checkpoint then resumed."""
    from replication.runfolder import SeedCheckpoint

    cfg = config(max_epochs=3, weighting=name)
    whole, _ = train_seed("mmoe", {}, data, cfg, 0, CPU, show_epochs=False)
    checkpoint = SeedCheckpoint(folder / "ckpt")
    train_seed("mmoe", {}, data, dataclasses.replace(cfg, max_epochs=2), 0, CPU, show_epochs=False,
               checkpoint=checkpoint, checkpoint_seconds=0)
    resumed, _ = train_seed("mmoe", {}, data, cfg, 0, CPU, show_epochs=False, checkpoint=checkpoint,
                            checkpoint_seconds=0)
    return without_timings(whole), without_timings(resumed)


@pytest.mark.parametrize("name", [*STATEFUL, "rlw", "pcgrad", "graddrop"])
def test_resumed_run_records_the_same_numbers_as_an_uninterrupted_one(name: str, data: Processed,
                                                                      tmp_path: Path) -> None:
    whole, resumed = resumed_and_whole(name, data, tmp_path)
    assert resumed["history"] == whole["history"]
    if name not in ("pcgrad", "graddrop"):  # the method moved the weights off the plain sum's
        assert whole["history"][-1]["loss_weights"] != {"task1": 1.0, "task2": 1.0}


def test_resumed_nash_mtl_run_agrees_to_its_solvers_tolerance(data: Processed, tmp_path: Path) -> None:
    # Its state is restored, but Clarabel's solution of the rebuilt cvxpy problem differs from the
    # running one's in the last bits (about 1e-8): the runs agree to that, not bit for bit.
    whole, resumed = resumed_and_whole("nash_mtl", data, tmp_path)
    assert resumed["history"][:2] == whole["history"][:2]
    for mine, theirs in zip(resumed["history"][2:], whole["history"][2:]):
        assert mine["loss_weights"] == pytest.approx(theirs["loss_weights"], rel=1e-6)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)
        assert mine["validation"]["task1"]["mse"] == pytest.approx(theirs["validation"]["task1"]["mse"], rel=1e-6)
