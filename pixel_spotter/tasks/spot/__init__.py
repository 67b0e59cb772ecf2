"""The sub-pixel spot task (``data=spot``): a Gaussian spot in photon counts per image, against the Cramér–Rao bound."""
