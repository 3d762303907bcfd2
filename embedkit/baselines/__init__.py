"""Baselines that need no encoder: Laplacian eigenmaps of the raw pixels, and latent optimization (free vectors)."""

from embedkit.baselines.laplacian import LaplacianConfig, fit_laplacian_to_store, laplacian_eigenmaps
from embedkit.baselines.latent import LatentConfig, fit_latent, fit_latent_to_store

__all__ = ["LaplacianConfig", "LatentConfig", "fit_latent", "fit_latent_to_store", "fit_laplacian_to_store",
           "laplacian_eigenmaps"]
