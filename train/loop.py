"""Training loops: early stopping on a validation fold, fixed-epoch training, prediction.

As the published code: AdamW, MSE on per-kg targets, gradient-norm clipping, shuffled
mini-batches, the validation loss is the mean of the per-batch mean losses, early stopping
keeps the weights of the best validation epoch (an improvement must exceed ``min_delta``)
and stops after ``patience_epochs`` epochs without one.

Determinism: every fit re-seeds python, numpy and torch with ``config.seed``, and the
mini-batch order comes from its own ``torch.Generator`` seeded with ``config.seed`` (the
same permutations a ``DataLoader(shuffle=True)`` with that generator draws). On CPU,
``torch.use_deterministic_algorithms`` is on during the fit, so a rerun gives identical
weights. On CUDA the order and initialisation are fixed too, but some kernels are not
bit-reproducible.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from g2h_edge.errors import TrainError
from g2h_edge.train.config import TrainConfig

__all__ = [
    "FitResult",
    "seed_everything",
    "deterministic",
    "fit_early_stopping",
    "fit_fixed_epochs",
    "predict",
    "resolve_device",
]

#: called after every epoch with (epoch, train_loss, val_loss or None)
EpochCallback = Callable[[int, float, "float | None"], None]


@dataclass
class FitResult:
    """What one fit produced; ``state_dict`` is on the CPU."""

    state_dict: dict
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic():
    """Deterministic torch algorithms (and cuDNN settings) for the duration, then restore."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; asking for CUDA without one is a :class:`TrainError`."""
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(
                "--device cuda was asked for but torch sees no CUDA device; use --device cpu",
                reason="no_cuda",
            )
        # deterministic cuBLAS needs this before its first use (else torch warns on every matmul)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device(name)


def _as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device)


def _train_epoch(model, opt, x, y, cfg: TrainConfig, gen: torch.Generator) -> float:
    """One pass over shuffled mini-batches; returns the mean of the batch losses."""
    model.train()
    loss_fn = nn.MSELoss()
    order = torch.randperm(x.shape[0], generator=gen).to(x.device)  # (N,)
    total, batches = 0.0, 0
    for start in range(0, x.shape[0], cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        xb, yb = x[idx], y[idx]  # (B, T, 10), (B, T, K)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        if not torch.isfinite(loss):
            raise TrainError(
                f"training loss became {loss.item()} (diverged); check the data "
                "for NaN/inf or lower the learning rate",
                reason="diverged",
            )
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        opt.step()
        total, batches = total + float(loss.item()), batches + 1
    return total / max(1, batches)


@torch.no_grad()
def _val_loss(model, x, y, batch_size: int) -> float:
    """Mean of the per-batch mean MSE, in order (as the reference computes it)."""
    model.eval()
    loss_fn = nn.MSELoss()
    losses = [
        float(loss_fn(model(x[s : s + batch_size]), y[s : s + batch_size]).item())
        for s in range(0, x.shape[0], batch_size)
    ]
    return sum(losses) / max(1, len(losses))


def _setup(make_model: Callable[[], nn.Module], cfg: TrainConfig):
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model = make_model().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    return model, opt, gen, device


def fit_early_stopping(
    make_model, x_train, y_train, x_val, y_val, cfg: TrainConfig, on_epoch: EpochCallback | None = None
) -> FitResult:
    """Train on standardised inputs with early stopping on the validation loss.

    ``x_*`` (N, T, 10) standardised, ``y_*`` (N, T, K) per kg. Returns the best epoch's
    weights; ``best_epoch`` counts from 1.
    """
    with deterministic():
        model, opt, gen, device = _setup(make_model, cfg)
        xt, yt = _as_tensor(x_train, device), _as_tensor(y_train, device)
        xv, yv = _as_tensor(x_val, device), _as_tensor(y_val, device)
        res = FitResult(state_dict={}, best_epoch=-1, best_val_loss=float("inf"), epochs_run=0)
        bad = 0
        for epoch in range(1, cfg.max_epochs + 1):
            t0 = time.perf_counter()
            tl = _train_epoch(model, opt, xt, yt, cfg, gen)
            res.epoch_seconds.append(time.perf_counter() - t0)
            vl = _val_loss(model, xv, yv, cfg.batch_size)
            res.train_loss.append(tl)
            res.val_loss.append(vl)
            res.epochs_run = epoch
            if on_epoch is not None:
                on_epoch(epoch, tl, vl)
            if vl < res.best_val_loss - cfg.min_delta:
                res.best_val_loss, res.best_epoch, bad = vl, epoch, 0
                res.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience_epochs:
                    break
        if res.best_epoch < 0:
            raise TrainError("the validation loss was never finite; check the data", reason="diverged")
    return res


def fit_fixed_epochs(
    make_model, x_train, y_train, epochs: int, cfg: TrainConfig, on_epoch: EpochCallback | None = None
) -> FitResult:
    """Train for exactly ``epochs`` epochs (no validation); returns the last weights."""
    if epochs < 1:
        raise TrainError(f"epochs={epochs}: must be at least 1", reason="bad_epochs")
    with deterministic():
        model, opt, gen, device = _setup(make_model, cfg)
        xt, yt = _as_tensor(x_train, device), _as_tensor(y_train, device)
        res = FitResult(state_dict={}, best_epoch=epochs, best_val_loss=float("nan"), epochs_run=0)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            tl = _train_epoch(model, opt, xt, yt, cfg, gen)
            res.epoch_seconds.append(time.perf_counter() - t0)
            res.train_loss.append(tl)
            res.epochs_run = epoch
            if on_epoch is not None:
                on_epoch(epoch, tl, None)
        res.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return res


@torch.no_grad()
def predict(
    model: nn.Module, x: np.ndarray, batch_size: int = 64, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Eval-mode predictions of ``model`` for (N, T, 10) inputs -> (N, T, K) float32."""
    model.eval().to(device)
    out = []
    for s in range(0, x.shape[0], batch_size):
        xb = _as_tensor(x[s : s + batch_size], torch.device(device))
        out.append(model(xb).detach().cpu().numpy().astype(np.float32))
    if not out:
        raise TrainError("nothing to predict: no cycles", reason="empty")
    return np.concatenate(out, axis=0)
