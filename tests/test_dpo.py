"""zebra.dpo.weighted_dpo_loss without a model: a hand computation, trl 1.16's own sigmoid DPO loss
on the same log-probs, weights that do not sum to the batch size, gradients, and bad weights."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from zebra.dpo import weighted_dpo_loss
from zebra.errors import ZebraError

# three pairs, policy moved away from the reference differently on each (so every ℓ_i differs from log 2)
POLICY_CHOSEN = [-10.0, -20.0, -5.0]
POLICY_REJECTED = [-12.0, -18.0, -9.0]
REF_CHOSEN = [-11.0, -19.0, -6.0]
REF_REJECTED = [-11.5, -19.5, -7.0]
BETA = 0.5


def tensors(dtype=torch.float64, requires_grad=False):
    return [torch.tensor(v, dtype=dtype, requires_grad=requires_grad)
            for v in (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)]


def by_hand() -> list[float]:
    """ℓ_i = −log σ(β[(π_w − ref_w) − (π_l − ref_l)]) = log(1 + exp(−β Δ_i)), written out."""
    out = []
    for pc, pr, rc, rr in zip(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED):
        delta = (pc - rc) - (pr - rr)
        out.append(math.log1p(math.exp(-BETA * delta)))
    return out


def test_per_pair_losses_and_rewards_match_a_hand_computation():
    losses = by_hand()  # Δ = 1 − (−0.5) = 1.5, −1 − 1.5 = −2.5, 1 − (−2) = 3
    assert losses[0] == pytest.approx(math.log1p(math.exp(-0.75)))
    out = weighted_dpo_loss(*tensors(), torch.ones(3, dtype=torch.float64), BETA)
    torch.testing.assert_close(out.losses, torch.tensor(losses, dtype=torch.float64))
    assert out.loss.item() == pytest.approx(sum(losses) / 3, rel=1e-12)
    torch.testing.assert_close(out.chosen_rewards, BETA * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out.rejected_rewards, BETA * torch.tensor([-0.5, 1.5, -2.0], dtype=torch.float64))


def test_weights_give_the_weighted_mean_not_the_mean_of_weighted_losses():
    """Weights summing to 5 over 3 pairs: Σ w ℓ / Σ w (0.1·ℓ₁ + 0.3·ℓ₂ + 0.6·ℓ₃) is not mean(w ℓ) = Σ w ℓ / 3."""
    weights = [0.5, 1.5, 3.0]
    losses = by_hand()
    expected = sum(w * loss for w, loss in zip(weights, losses)) / sum(weights)
    out = weighted_dpo_loss(*tensors(), torch.tensor(weights, dtype=torch.float64), BETA)
    assert out.loss.item() == pytest.approx(expected, rel=1e-12)
    assert abs(out.loss.item() - sum(w * loss for w, loss in zip(weights, losses)) / 3) > 0.1
    # only the ratios matter: ×7 changes nothing
    scaled = weighted_dpo_loss(*tensors(), 7 * torch.tensor(weights, dtype=torch.float64), BETA)
    assert scaled.loss.item() == pytest.approx(expected, rel=1e-12)


def _trl_sigmoid_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> torch.Tensor:
    """trl 1.16's DPOTrainer._compute_loss itself, on these log-probs: a stand-in model returns them
    as one completion token per sequence, and the reference log-probs come as precomputed."""
    from trl import DPOTrainer

    n = len(policy_chosen)
    log_probs = torch.cat([policy_chosen, policy_rejected])[:, None]  # (2B, 1): batch is [chosen, rejected]
    outputs = SimpleNamespace(log_probs=log_probs, entropy=torch.zeros_like(log_probs),
                              mean_logits=torch.zeros_like(log_probs), is_top1=torch.zeros_like(log_probs, dtype=torch.bool))
    accelerator = SimpleNamespace(device="cpu", gather=lambda x: x, gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"], loss_weights=[1.0],
        beta=beta, use_weighting=False, _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.ones(2 * n, 2, dtype=torch.long), "attention_mask": torch.ones(2 * n, 2, dtype=torch.long),
              "completion_mask": torch.tensor([[0, 1]] * (2 * n)), "ref_chosen_logps": ref_chosen,
              "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, lambda **kwargs: outputs, inputs, False)
    assert trainer._metrics["train"]["rewards/margins"]  # trl's own code ran, metrics and all
    return loss


def test_unit_weights_equal_trls_own_sigmoid_dpo_loss_with_policy_off_the_reference():
    args = tensors(torch.float32)
    trl_loss = _trl_sigmoid_dpo_loss(*args, BETA)
    ours = weighted_dpo_loss(*args, torch.ones(3), BETA)
    assert (ours.losses - math.log(2)).abs().min() > 0.2  # policy ≠ reference on every pair
    assert ours.loss.item() == pytest.approx(trl_loss.item(), abs=1e-7)
    # and trl's loss on one pair is our ℓ_i
    for i in range(3):
        one = [t[i:i + 1] for t in args]
        assert ours.losses[i].item() == pytest.approx(_trl_sigmoid_dpo_loss(*one, BETA).item(), abs=1e-7)


def test_gradients_are_the_weighted_dpo_gradients():
    """torch's gradcheck (finite differences), and the closed form
    ∂L/∂π_w,i = −β w_i σ(−β Δ_i) / Σ w = −∂L/∂π_l,i."""
    weights = torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64)
    torch.autograd.gradcheck(lambda *xs: weighted_dpo_loss(*xs, weights, BETA).loss, tensors(requires_grad=True))
    args = tensors(requires_grad=True)
    weighted_dpo_loss(*args, weights, BETA).loss.backward()
    delta = (torch.tensor(POLICY_CHOSEN) - torch.tensor(REF_CHOSEN)) - (torch.tensor(POLICY_REJECTED) - torch.tensor(REF_REJECTED))
    expected = -BETA * weights * torch.sigmoid(-BETA * delta.double()) / weights.sum()
    torch.testing.assert_close(args[0].grad, expected)
    torch.testing.assert_close(args[1].grad, -expected)


def test_a_zero_weight_removes_a_pair_and_an_all_zero_batch_is_no_step():
    args = tensors(requires_grad=True)
    out = weighted_dpo_loss(*args, torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64), BETA)
    out.loss.backward()
    assert args[0].grad[1].item() == 0.0 and args[1].grad[1].item() == 0.0
    assert out.loss.item() == pytest.approx((by_hand()[0] + 3 * by_hand()[2]) / 4, rel=1e-12)
    args = tensors(requires_grad=True)
    out = weighted_dpo_loss(*args, torch.zeros(3, dtype=torch.float64), BETA)
    out.loss.backward()
    assert out.loss.item() == 0.0 and not args[0].grad.any() and not args[1].grad.any()


@pytest.mark.parametrize("scale, dtype", [(1e-40, torch.float32), (1e30, torch.float32), (1e-320, torch.float64)],
                         ids=["float32-subnormal", "float32-huge", "float64-subnormal"])
def test_tiny_and_huge_weights_weigh_by_their_ratios(scale, dtype):
    """Σ w over subnormal weights loses digits (1e-320 has 3) and huge ones overflow a float32 sum."""
    ratios = torch.tensor([1.0, 3.0, 2.0], dtype=dtype)
    expected = weighted_dpo_loss(*tensors(dtype), ratios, BETA).loss
    out = weighted_dpo_loss(*tensors(dtype), ratios * scale, BETA).loss
    assert torch.isfinite(out) and out.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("weights", [[1.0, -0.5, 1.0], [1.0, float("nan"), 1.0], [1.0, float("inf"), 1.0]])
def test_weights_that_mean_nothing_are_refused(weights):
    with pytest.raises(ZebraError, match="finite and >= 0"):
        weighted_dpo_loss(*tensors(), torch.tensor(weights, dtype=torch.float64), BETA)
