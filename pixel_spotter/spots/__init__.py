"""Sub-pixel spots at the Cramér–Rao bound: the physics core of a future ``data=spot`` task.

- ``psf``: expected photon counts of a pixelated Gaussian spot, their derivatives, and noisy images;
- ``crlb``: the Cramér–Rao lower bound of that exact model, and Mortensen et al. 2010's closed form;
- ``fit``: reference estimators, centroid and a batched maximum-likelihood fit;
- ``bench``: ``python -m pixel_spotter.spots.bench``, their speed and RMSE / CRLB.

Self-contained (torch and numpy only); not yet wired into the data module or training.
"""
