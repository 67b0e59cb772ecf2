"""The data: honest splits over positions, samplers and per-image seeds, the datamodule, the corruptions.
Images are rendered per batch by the task (``pixel_spotter.tasks``)."""
