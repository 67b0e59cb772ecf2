"""What every LightningModule of this project shares: a network, and the optimizer and scheduler its config gives
(Hydra partials: ``optimizer(params, lr=...)``, ``scheduler(optimizer)``, the scheduler watching val/loss)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning import LightningModule
from torch import nn


class Optimized(LightningModule):
    def __init__(self, net: nn.Module, lr: float, optimizer: Callable | None, scheduler: Callable | None):
        super().__init__()
        self.net = net
        self.lr = lr
        self.optimizer_factory = optimizer or torch.optim.Adam
        self.scheduler_factory = scheduler

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters(), lr=self.lr)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "monitor": "val/loss"}}
