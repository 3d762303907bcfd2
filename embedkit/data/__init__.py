"""Datasets: CIFAR-10, MNIST and any image folder or archive, found under a data root, decoded once and cached.

>>> from embedkit.data import load_images
>>> images = load_images("cifar10", "test")        # doctest: +SKIP
>>> images.images.shape, images.class_names[:2]   # doctest: +SKIP
((10000, 32, 32, 3), ('airplane', 'automobile'))
>>> load_images("cifar10", "train", sample=5000, seed=0).images.shape   # doctest: +SKIP
(5000, 32, 32, 3)
"""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.data.sources import KNOWN_DATASETS, ImageSet, available_datasets, load_images, resolve_data_root

__all__ = ["KNOWN_DATASETS", "ImageSet", "available_datasets", "load_images", "resolve_data_root"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "KNOWN_DATASETS": "embedkit.data.sources",
        "ImageSet": "embedkit.data.sources",
        "available_datasets": "embedkit.data.sources",
        "load_images": "embedkit.data.sources",
        "resolve_data_root": "embedkit.data.sources",
    },
)
