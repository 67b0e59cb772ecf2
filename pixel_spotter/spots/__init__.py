"""Sub-pixel spots at the Cramér–Rao bound: the physics behind ``data=spot`` (``tasks/spot/rendering.py``,
``tasks/spot/metrics.py``) and ``model=spot_fit``; imports nothing of the package outside ``spots/``.

- ``psf``: expected photon counts of a pixelated Gaussian spot, their derivatives, and noisy images;
- ``crlb``: the Cramér–Rao lower bound of that exact model (sigma_psf known, or unknown too), and Mortensen et
  al. 2010's closed form;
- ``fit``: reference estimators, centroid and a batched maximum-likelihood fit; and the fit with sigma_psf free
  that ``model=spot_fit`` runs on its patches;
- ``bench``: ``pixel-spotter spots bench``, their speed and RMSE / CRLB;
- ``bayes``: the posterior mean of the position told N, b and sigma_psf, by brute-force quadrature (the
  minimum-mean-squared-error estimator: a lower bound for any estimator where the CRLB's local bound fails);
- ``floor``: ``pixel-spotter spots floor``, that Bayes floor on the ``data=spot`` test images per N.

Self-contained (torch and numpy only), except ``floor``, which builds the ``data=spot`` data module from conf/.
"""
