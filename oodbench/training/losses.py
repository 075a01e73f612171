"""Losses of Lee et al., ICLR 2018, "Training Confidence-calibrated Classifiers for
Detecting Out-of-Distribution Samples".

KL(U || p) for U uniform over K classes, per sample:
    KL = sum_k (1/K) log((1/K) / p_k) = -log K - (1/K) sum_k log p_k
averaged over the batch. (The public code writes K * kl_div(log p, U, mean-reduced),
which is the same quantity.) It is 0 exactly when p is uniform.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kl_uniform_to_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(U || softmax(logits)); logits of shape (N, K)."""
    num_classes = logits.shape[1]
    log_probs = F.log_softmax(logits, dim=1)
    return (-math.log(num_classes) - log_probs.mean(dim=1)).mean()


def confidence_loss(
    logits_in: torch.Tensor, labels: torch.Tensor, logits_out: torch.Tensor, beta: float
) -> torch.Tensor:
    """E_in[-log p(y|x)] + beta * E_out[KL(U || p(.|x))]."""
    return F.cross_entropy(logits_in, labels) + beta * kl_uniform_to_softmax(logits_out)
