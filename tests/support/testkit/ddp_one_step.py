"""One training step of the tiny MVSplat preset on fixed examples, for the DDP equivalence test:

    python ddp_one_step.py <dataset root> <devices> <per-process batch> <accumulated batches> <out.pt>

The examples are the first scenes of the tiny set's test split (evaluation index: fixed views),
in a map-style dataset, so that Lightning's DistributedSampler gives rank r the examples r, r + N,
...: N processes with batch b see exactly the N*b examples that one process sees with batch b and
N accumulated batches (the reference: MVSplat's cross-view attention groups the same view of
different batch elements, an upstream quirk, so one batch of N*b is a different computation).
Rank 0 saves the gradients (after DDP's all-reduce, before clipping) and the weights after the step. A script file, not ``python -c``: Lightning's DDP launcher
starts the other ranks by running this file again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset


class Fixed(Dataset):
    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support: testkit
    root, devices, batch, accumulate, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    from lightning.pytorch import Callback, Trainer
    from splatcore.dataset import DataModule
    from splatcore.main import build_model, compose_config, typed_config

    from pmsplat.reproduce.protocol import SYNTHETIC_SPLITS, evaluation_overrides
    from testkit.tiny_mvsplat import tiny_overrides

    train = tiny_overrides(root, out.parent / "run", "loss=[mse]", "trainer.max_steps=1")
    run = typed_config(compose_config(train))
    evaluation = typed_config(compose_config(train + evaluation_overrides(root / SYNTHETIC_SPLITS["interpolation"], False)))
    examples = list(DataModule(evaluation.dataset, evaluation.data_loader).test_dataloader().dataset)[: devices * batch * accumulate]
    torch.manual_seed(0)
    model = build_model(run)
    grads = {}

    class KeepGradients(Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads.update({n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None})

    accelerator = os.environ.get("PMSPLAT_DDP_ACCELERATOR", "cpu")  # gpu under `make gpu-check`
    trainer = Trainer(callbacks=[KeepGradients()], accelerator=accelerator, devices=devices, strategy="ddp" if devices > 1 else "auto", max_steps=1,
                      accumulate_grad_batches=accumulate, gradient_clip_val=0.5, enable_checkpointing=False, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=DataLoader(Fixed(examples), batch_size=batch, shuffle=False))
    if trainer.global_rank == 0:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save({"weights": weights, "grads": grads, "lr": trainer.optimizers[0].param_groups[0]["lr"]}, out)


if __name__ == "__main__":
    main()
