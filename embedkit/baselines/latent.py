"""Latent optimization ("no amortization"): one free vector per image, fitted with the VICReg loss, no encoder.

Each image of cifar10/train and cifar10/test gets a free `dim`-d row of a table, initialised N(0, 1) with `seed`.
A step takes a batch of rows i, pairs each with a random one of its k nearest neighbours j (exact kNN, never itself,
over another model's embeddings of train and test together) and applies `vicreg_loss(E[i], E[j])` to the rows
themselves. There is no projector: the VICReg expander exists to let an encoder's representation keep information
the loss would squeeze out, but free rows have no encoder behind them, so an expander would only add a second,
unconstrained copy of each vector; putting the loss on the rows makes the variance and covariance terms shape the
stored embeddings directly (a neighbour-graph embedding, close to Laplacian eigenmaps with a VICReg whitening).
Only the images fitted are represented, hence train and test are fitted together (test rows never see labels).
Rows are updated with lazy Adam (`torch.optim.SparseAdam`): a step touches only the rows of its batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from embedkit._util.atomic import same_file
from embedkit._util.progress import ProgressFn
from embedkit.device import pick_device
from embedkit.errors import ConfigError, StoreError
from embedkit.search.index import knn
from embedkit.store.store import GroupData, open_store
from embedkit.training.config import diverged, raise_first, vicreg_fit_checks
from embedkit.training.losses import vicreg_loss

GROUPS = ("cifar10/train", "cifar10/test")
METHOD = "latent-optimization"


@dataclass(frozen=True)
class LatentConfig:
    """Everything that determines a latent fit; saved in the attrs of the groups it writes."""

    epochs: int = 50
    k: int = 3  # neighbours per image; the positive is one of them at random
    dim: int = 128
    batch_size: int = 256
    lr: float = 1e-2  # SparseAdam; rows start at unit scale, so 1e-2 moves a row ~1% of its norm per touch
    lam: float = 25.0
    mu: float = 25.0
    nu: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatentFit:
    """The fitted rows (N, dim) float32 and the mean loss terms of each epoch."""

    vectors: np.ndarray
    epoch_terms: list[dict]


@dataclass(frozen=True)
class LatentRun:
    """What `fit_latent_to_store` wrote and how the fit went."""

    store: Path
    n_train: int
    n_test: int
    config: LatentConfig
    seconds: float
    epoch_terms: list[dict]

    def to_json(self) -> dict:
        """The `--json` object: store, n_train, n_test, epochs, seconds, first and final epoch's loss terms, config."""
        return {
            "store": str(self.store),
            "groups": list(GROUPS),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "epochs": self.config.epochs,
            "seconds": round(self.seconds, 2),
            "first": self.epoch_terms[0],
            "final": self.epoch_terms[-1],
            "config": self.config.to_dict(),
        }


LATENT_OPTIONS = ("epochs", "batch_size", "lr", "lam", "mu", "nu", "seed", "k")


def latent_config_from(options: dict) -> LatentConfig:
    """A LatentConfig from training options; ConfigError naming the first given option latent optimization has no
    use for (it has no encoder, views or run folder), so a mistyped request is never silently ignored."""
    other = sorted(name for name, value in options.items() if value is not None and name not in LATENT_OPTIONS)
    if other:
        raise ConfigError(f"--latent has no encoder or run folder; drop --{other[0].replace('_', '-')}")
    return LatentConfig(**{name: value for name, value in options.items() if value is not None})


def check_latent_config(config: LatentConfig, n_rows: int) -> None:
    """Raise ConfigError (one line) unless `config` can fit `n_rows` images."""
    raise_first(
        [
            *vicreg_fit_checks(config),
            (1 <= config.k <= n_rows - 1, f"k={config.k}: must be between 1 and N-1={n_rows - 1}"),
        ]
    )


def initial_vectors(n: int, config: LatentConfig) -> torch.Tensor:
    """(n, dim) float32 N(0, 1) rows drawn with `config.seed`: where every fit starts."""
    return torch.randn(n, config.dim, generator=torch.Generator().manual_seed(config.seed))


def fit_latent(
    neighbours: np.ndarray,
    config: LatentConfig,
    *,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
) -> LatentFit:
    """Fit one free vector per row of `neighbours` (N, k') int64 (row r's nearest rows, r excluded).

    Each epoch visits every row once as an anchor, in a seeded random order; its positive is one of its first
    `config.k` neighbours drawn at random. `on_progress(step, total_steps)` after every step.
    """
    neighbours = np.asarray(neighbours, dtype=np.int64)[:, : config.k]
    n = len(neighbours)
    check_latent_config(config, n)
    torch_device = pick_device(device)
    table = torch.nn.Embedding(n, config.dim, sparse=True).to(torch_device)
    with torch.no_grad():
        table.weight.copy_(initial_vectors(n, config))
    optimizer = torch.optim.SparseAdam(table.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed + 1)
    table_rows = torch.from_numpy(neighbours).to(torch_device)
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    epoch_terms = []
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        picks = torch.randint(neighbours.shape[1], (n,), generator=generator)
        sums = dict.fromkeys(("total", "inv", "var", "cov"), 0.0)
        for step in range(steps_per_epoch):
            rows = order[step * batch : (step + 1) * batch].to(torch_device)
            positives = table_rows[rows, picks[step * batch : (step + 1) * batch].to(torch_device)]
            terms = vicreg_loss(table(rows), table(positives), config.lam, config.mu, config.nu)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            values = terms.as_floats()
            error = diverged(
                "latent optimization", "the loss", values, epoch, config.epochs, epoch * steps_per_epoch + step + 1
            )
            if error is not None:
                raise error
            for key, value in values.items():
                sums[key] += value / steps_per_epoch
            if on_progress is not None:
                on_progress(epoch * steps_per_epoch + step + 1, config.epochs * steps_per_epoch)
        epoch_terms.append({"epoch": epoch, **sums})
    if not torch.isfinite(table.weight).all():  # the last step's update overflowed
        raise diverged(
            "latent optimization",
            "a vector",
            {"vector": math.nan},
            config.epochs - 1,
            config.epochs,
            config.epochs * steps_per_epoch,
        )
    return LatentFit(table.weight.detach().cpu().numpy().astype(np.float32), epoch_terms)


def fit_latent_to_store(
    source_store: Path | str,
    out_store: Path | str,
    config: LatentConfig,
    *,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
) -> LatentRun:
    """Fit free vectors for cifar10/train and cifar10/test together; write both groups to `out_store`.

    Neighbours: exact kNN (never itself) over `source_store`'s embeddings of the two groups concatenated (another
    model's, e.g. VICReg's). Groups written (overwriting) keep the source's labels, ids and dataset attrs, plus
    config JSON with method, the LatentConfig, the source store and its groups' content ids.
    """
    source_store, out_store = Path(source_store), Path(out_store)
    if out_store.exists() and source_store.exists() and same_file(out_store, source_store):
        raise StoreError(f"{out_store}: is the source store; write the latent groups to another store")
    source = open_store(source_store)
    missing = [g for g in GROUPS if g not in source]
    if missing:
        groups = ", ".join(source.groups()) or "none"
        raise StoreError(
            f"{source_store}: group '{missing[0]}' not found (groups: {groups}); "
            "encode cifar10 train and test into it first"
        )
    parts = [source.read(g) for g in GROUPS]
    started = time.perf_counter()
    embeddings = np.concatenate([p.embeddings for p in parts]).astype(np.float32)
    check_latent_config(config, len(embeddings))
    _, neighbours = knn(embeddings, embeddings, config.k, exclude_self=True)
    fit = fit_latent(neighbours, config, device=device, on_progress=on_progress)
    seconds = time.perf_counter() - started
    provenance = {
        "method": METHOD,
        **config.to_dict(),
        "source_store": str(source_store.resolve()),
        "source_content_ids": {p.name: source.content_id(p.name) for p in parts},
        "fitted_together": list(GROUPS),
        "projector": False,
    }
    out = open_store(out_store, create=True)
    offsets = np.cumsum([0] + [len(part.embeddings) for part in parts])
    fitted = [
        GroupData(
            part.name,
            fit.vectors[start:stop],
            part.labels,
            part.ids,
            {
                **{key: part.attrs[key] for key in ("dataset", "split", "class_names") if key in part.attrs},
                "config": provenance,
            },
        )
        for part, start, stop in zip(parts, offsets[:-1], offsets[1:])
    ]
    out.write_groups(fitted, overwrite=True)  # train and test land together, or neither
    return LatentRun(out.path, len(parts[0].embeddings), len(parts[1].embeddings), config, seconds, fit.epoch_terms)
