"""Baselines that need no encoder: Laplacian eigenmaps of the raw pixels, and latent optimization (free vectors)."""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.baselines.laplacian import LaplacianConfig, fit_laplacian_to_store, laplacian_eigenmaps
    from embedkit.baselines.latent import LatentConfig, fit_latent, fit_latent_to_store

__all__ = [
    "LaplacianConfig",
    "LatentConfig",
    "fit_latent",
    "fit_latent_to_store",
    "fit_laplacian_to_store",
    "laplacian_eigenmaps",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LaplacianConfig": "embedkit.baselines.laplacian",
        "fit_laplacian_to_store": "embedkit.baselines.laplacian",
        "laplacian_eigenmaps": "embedkit.baselines.laplacian",
        "LatentConfig": "embedkit.baselines.latent",
        "fit_latent": "embedkit.baselines.latent",
        "fit_latent_to_store": "embedkit.baselines.latent",
    },
)
