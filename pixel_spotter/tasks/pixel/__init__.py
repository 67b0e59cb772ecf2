"""The clean-pixel task: one bright pixel per image, with the corruptions of ``augment``."""
