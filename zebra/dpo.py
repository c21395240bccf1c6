"""The weighted DPO loss, one pure function (no model, no trainer).

DPO (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7) for a pair (x, y_w, y_l):

    ℓ = −log σ(β [log πθ(y_w|x) − log π_ref(y_w|x)] − β [log πθ(y_l|x) − log π_ref(y_l|x)])

and the DPO paper's loss is the mean of ℓ over the data. The ZEBRA paper trains with DPO (§4.3,
citing Rafailov et al.) and states no loss of its own. Per-example weights come from the
reliability-aware alignment seed (SPEC §9, seed 003), which reweights each example's loss by the
reliability of its label; here the batch loss is the weighted mean

    L = Σ_i w_i ℓ_i / Σ_i w_i

so that only the weights' ratios matter (at w_i = 1 it is DPO's mean, trl's loss exactly) and a
pair with weight 0 contributes neither loss nor gradient. The normalisation by Σ w_i is this
project's choice: the seed gives none for DPO.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from zebra.errors import ZebraError


class DPOLoss(NamedTuple):
    """What a DPO step logs: the loss, and each pair's rewards (trl's `rewards/chosen`, `rewards/rejected`)."""

    loss: torch.Tensor  # scalar, Σ w_i ℓ_i / Σ w_i
    losses: torch.Tensor  # ℓ_i, one per pair
    chosen_rewards: torch.Tensor  # β (log πθ(y_w|x) − log π_ref(y_w|x)), detached
    rejected_rewards: torch.Tensor  # β (log πθ(y_l|x) − log π_ref(y_l|x)), detached


def weighted_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    weights: torch.Tensor,
    beta: float,
) -> DPOLoss:
    """DPO's sigmoid loss per pair (eq. 7 above), averaged with weights: Σ w_i ℓ_i / Σ w_i.

    Every tensor has shape (B,): summed log-probabilities of each pair's chosen and rejected
    response under the policy and the reference model, and one weight ≥ 0 per pair. A batch whose
    weights are all 0 has loss 0 and no gradient (it is a batch of dropped pairs). The weights are
    divided by their largest value first, so tiny or huge weights (1e-40, 1e30) give the same loss
    as their ratios and the sum never under- or overflows. Weights that are negative, NaN or inf
    raise ZebraError: they have no meaning as a share of the batch.
    """
    if weights.shape != policy_chosen_logps.shape:
        raise ZebraError(f"weights have shape {tuple(weights.shape)}, the pairs {tuple(policy_chosen_logps.shape)}")
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ZebraError(f"weights must be finite and >= 0, got {weights.tolist()}")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    weights = weights.to(losses.dtype)
    largest = weights.max()
    # scaled to at most 1, the largest exactly 1: Σ w ≥ 1 whenever any weight is positive
    scaled = weights / torch.where(largest > 0, largest, torch.ones_like(largest))
    total = scaled.sum()
    loss = (scaled * losses).sum() / torch.where(total > 0, total, torch.ones_like(total))
    return DPOLoss(loss, losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())
