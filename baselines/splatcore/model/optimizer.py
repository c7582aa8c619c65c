"""Optimizer and LR schedule of the model wrapper (upstream-facts §5.1, §5.2, §11.19).

- MVSplat: Adam over every trainable parameter at ``lr``.
- DepthSplat: AdamW (``weight_decay``) with two groups when ``lr_monodepth > 0``: parameters whose
  name contains ``"pretrained"`` (the DINOv2 ViT) at ``lr_monodepth``, the others at ``lr``.
- ``cosine_lr``: OneCycleLR(max_lr=group lrs, total_steps=max_steps + 10, pct_start=0.01,
  anneal_strategy="cos", cycle_momentum=False; PyTorch's div_factor 25 / final_div_factor 1e4),
  otherwise LinearLR warm-up from lr / warm_up_steps to lr over ``warm_up_steps``. Stepped every
  optimizer step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import OptimizerCfg
from ..errors import ConfigError

MONODEPTH_MARKER = "pretrained"


def parameter_groups(module: nn.Module, cfg: OptimizerCfg) -> list[dict[str, Any]]:
    """The optimizer's parameter groups (``name`` entries list the parameter names)."""
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    if cfg.lr_monodepth > 0:
        mono = [(n, p) for n, p in named if MONODEPTH_MARKER in n]
        rest = [(n, p) for n, p in named if MONODEPTH_MARKER not in n]
        groups = [
            {"params": [p for _, p in rest], "lr": cfg.lr, "names": [n for n, _ in rest]},
            {"params": [p for _, p in mono], "lr": cfg.lr_monodepth, "names": [n for n, _ in mono]},
        ]
        return [g for g in groups if g["params"]]
    return [{"params": [p for _, p in named], "lr": cfg.lr, "names": [n for n, _ in named]}]


def build_optimizer(module: nn.Module, cfg: OptimizerCfg, max_steps: int | None) -> dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns: optimizer + per-step scheduler."""
    groups = parameter_groups(module, cfg)
    if not groups:
        raise ConfigError("the model has no trainable parameters to optimise")
    if cfg.name == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.cosine_lr:
        if max_steps is None or max_steps < 1:
            raise ConfigError(
                f"optimizer.cosine_lr (OneCycle) needs trainer.max_steps >= 1, got {max_steps}; "
                "set trainer.max_steps or optimizer.cosine_lr=false"
            )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in groups],
            total_steps=max_steps + 10,
            pct_start=0.01,
            anneal_strategy="cos",
            cycle_momentum=False,
        )
    else:
        scheduler = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1 / cfg.warm_up_steps, end_factor=1.0, total_iters=cfg.warm_up_steps
        )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
