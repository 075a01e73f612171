"""The joint confidence loss of Lee et al., ICLR 2018 (section 2.3), one minibatch at a time.

Per minibatch, three Adam optimisers, in this order (as in alinlab/Confident_classifier,
`run_joint_confidence.py`):
  1. D step:  BCE(D(x), 1) + BCE(D(G(z1)).detached, 0)                        -> updates D only
  2. G step:  BCE(D(G(z1)), 1) + beta * KL(U || p(.|G(z1))), the SAME z1 fake  -> updates G only
              (non-saturating GAN loss; D is the one just updated)
  3. C step:  NLL(x, y) + beta * KL(U || p(.|G(z2))) with a FRESH z2 of the batch size, drawn
              after G was updated                                               -> updates C only
There is no pull-away / entropy term (the camera-ready and public code have none).

Each step is its own function (`d_step`, `g_step`, `c_step`) so that tests can check that each
one moves only its own network, and that `joint_confidence_step` calls them in this order.
The modules may be image networks or 2-D MLPs: only the shapes matter
(generator: (N, nz) -> x-like; discriminator: x-like -> (N,) probabilities).

GPU efficiency: the steps return their statistics as detached 0-d tensors on the device and
never read them on the host (no `.item()`), so a step never waits for the GPU; the loop sums
them on the device and reads them once per epoch.

Data parallel: the networks may be wrapped in DistributedDataParallel. A forward pass whose
network is NOT updated by that step (D and the classifier in the G step, G in the classifier
step) goes through the wrapped module itself (`local`), so it neither syncs buffers nor leaves
the wrapper waiting for gradients; the updated network's forward goes through the wrapper, whose
backward averages its gradients over the ranks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from oodbench.training.losses import kl_uniform_to_softmax


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed-precision autocast for forward passes, or a no-op when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def bce(prob: torch.Tensor, target: float) -> torch.Tensor:
    """Mean BCE(prob, target) for probabilities from a Sigmoid discriminator.

    Computed in float32 with autocast off: autocast refuses `binary_cross_entropy` on half
    types, and log(p) of a bf16 probability near 0 or 1 is too coarse.
    """
    with torch.autocast(device_type=prob.device.type, enabled=False):
        prob = prob.float()
        return F.binary_cross_entropy(prob, torch.full_like(prob, target))


def local(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (for forwards without a gradient sync)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily switch off parameter gradients of `modules`.

    Gradients still flow THROUGH them to earlier networks (the G step back-propagates through D
    and the classifier into G); only their own weight gradients are skipped, which saves time
    and makes it impossible for a stray optimiser step to move them.
    """
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for param, _ in saved:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in saved:
            param.requires_grad_(flag)


def d_step(
    x: torch.Tensor,
    fake: torch.Tensor,
    *,
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Step 1: BCE(D(x), 1) + BCE(D(fake.detach()), 0); one optimiser step of D."""
    opt_d.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype):
        p_real = discriminator(x)
        p_fake = discriminator(fake.detach())
    loss = bce(p_real, 1.0) + bce(p_fake, 0.0)
    loss.backward()
    opt_d.step()
    return {
        "d_loss": loss.detach(),
        "d_real": p_real.detach().float().mean(),
        "d_fake": p_fake.detach().float().mean(),
    }


def g_step(
    fake: torch.Tensor,
    *,
    classifier: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    beta: float,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Step 2: BCE(D(fake), 1) + beta * KL(U || p(.|fake)) on the same fake batch; G step only.

    `fake` must still carry G's graph (it is G(z1) from before the D step). With beta == 0 the
    classifier is not evaluated at all (a plain GAN step, used by the warm-up epochs).
    """
    opt_g.zero_grad(set_to_none=True)
    with frozen(discriminator, classifier):
        with autocast(fake.device, amp_dtype):
            p_fake = local(discriminator)(fake)
        gan_loss = bce(p_fake, 1.0)
        kl = torch.zeros((), device=fake.device)
        if beta != 0.0:
            with autocast(fake.device, amp_dtype):
                logits = local(classifier)(fake)
            kl = kl_uniform_to_softmax(logits.float())
        loss = gan_loss + beta * kl
        loss.backward()
    opt_g.step()
    return {"g_loss": gan_loss.detach(), "g_kl": kl.detach()}


def c_step(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classifier: nn.Module,
    generator: nn.Module,
    opt_c: torch.optim.Optimizer,
    beta: float,
    nz: int,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Step 3: NLL(x, y) + beta * KL(U || p(.|G(z2))) with a fresh z2 ~ N(0, I); classifier step.

    z2 is drawn here, i.e. after the G step, and G(z2) is computed without a graph (G is not
    updated by this step). With beta == 0 no fake batch is drawn (plain cross-entropy).
    """
    opt_c.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype):
        logits = classifier(x)
    nll = F.cross_entropy(logits.float(), y)
    kl = torch.zeros((), device=x.device)
    if beta != 0.0:
        z2 = torch.randn(x.shape[0], nz, device=x.device)
        with torch.no_grad(), autocast(x.device, amp_dtype):
            fake2 = local(generator)(z2)
        with autocast(x.device, amp_dtype):
            logits_fake = classifier(fake2)
        kl = kl_uniform_to_softmax(logits_fake.float())
    loss = nll + beta * kl
    loss.backward()
    opt_c.step()
    accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
    return {"loss": nll.detach(), "kl": kl.detach(), "acc": accuracy}


def joint_confidence_step(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classifier: nn.Module,
    generator: nn.Module,
    discriminator: nn.Module,
    opt_c: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    beta: float,
    nz: int,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """One minibatch of the joint confidence loss: D step, G step (same z1), C step (fresh z2).

    Returns the batch statistics (detached 0-d tensors on the device): loss (classifier NLL),
    kl (classifier KL on G(z2)), acc, d_loss, d_real = mean D(x), d_fake = mean D(G(z1)) before
    the D update, g_loss (BCE part of the G loss), g_kl (KL part of the G loss).
    """
    z1 = torch.randn(x.shape[0], nz, device=x.device)
    with autocast(x.device, amp_dtype):
        fake = generator(z1)
    stats = d_step(x, fake, discriminator=discriminator, opt_d=opt_d, amp_dtype=amp_dtype)
    stats |= g_step(
        fake, classifier=classifier, discriminator=discriminator, opt_g=opt_g, beta=beta, amp_dtype=amp_dtype
    )
    stats |= c_step(
        x, y, classifier=classifier, generator=generator, opt_c=opt_c, beta=beta, nz=nz, amp_dtype=amp_dtype
    )
    return stats
