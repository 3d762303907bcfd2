"""The LARS optimiser and the learning-rate schedule (linear warm-up, then constant or cosine) of training."""

from __future__ import annotations

import math

import torch


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with momentum, as in facebookresearch/vicreg.

    Param groups carry `weight_decay` and a `lars` flag: groups with `lars=False` (biases, BatchNorm) get neither
    weight decay nor trust-ratio scaling, the usual exclusion. `eta` is the trust coefficient; 0.02 is
    solo-learn's value for CIFAR (the official ImageNet code uses 0.001).
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.02):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, lars=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if group["lars"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    param_norm, update_norm = torch.norm(p), torch.norm(update)
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0), group["eta"] * param_norm / update_norm, 1.0
                    )
                    update = update.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffer = state["momentum_buffer"]
                buffer.mul_(group["momentum"]).add_(update)
                p.add_(buffer, alpha=-group["lr"])


def learning_rate(config, step: int, steps_per_epoch: int) -> float:
    """The learning rate at global `step` (0-based) for a TrainConfig-like `config`.

    Base rate `config.lr`, times batch_size / 256 for LARS (the linear scaling rule); linear warm-up over
    `warmup_epochs`, then constant or a cosine decay to 1/1000 of the base at the last step.
    """
    base = config.lr * (config.batch_size / 256 if config.optimizer == "lars" else 1.0)
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    if config.schedule == "constant":
        return base
    total_steps = config.epochs * steps_per_epoch
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps - 1))
    final = base * 1e-3
    return final + (base - final) * 0.5 * (1 + math.cos(math.pi * progress))
