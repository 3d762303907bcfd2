"""Training: the VICReg loss, encoders and checkpoints, views, the training loop, and encoding images.

>>> import torch
>>> from embedkit.training import vicreg_loss
>>> terms = vicreg_loss(torch.zeros(8, 4), torch.zeros(8, 4))
>>> round(float(terms.variance), 4)      # all-zero views: each view's std term is 1 - sqrt(1e-4) = 0.99
1.98
"""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.training.config import PRESETS, TrainConfig, make_config
    from embedkit.training.encode import encode_images, encode_to_store
    from embedkit.training.log import read_log
    from embedkit.training.loop import TrainResult, train
    from embedkit.training.losses import VICRegTerms, vicreg_loss
    from embedkit.training.models import load_checkpoint

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "VICRegTerms",
    "encode_images",
    "encode_to_store",
    "load_checkpoint",
    "make_config",
    "read_log",
    "train",
    "vicreg_loss",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PRESETS": "embedkit.training.config",
        "TrainConfig": "embedkit.training.config",
        "make_config": "embedkit.training.config",
        "encode_images": "embedkit.training.encode",
        "encode_to_store": "embedkit.training.encode",
        "TrainResult": "embedkit.training.loop",
        "read_log": "embedkit.training.log",
        "train": "embedkit.training.loop",
        "VICRegTerms": "embedkit.training.losses",
        "vicreg_loss": "embedkit.training.losses",
        "load_checkpoint": "embedkit.training.models",
    },
)
