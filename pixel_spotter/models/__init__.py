"""Networks: each maps images (N, 1, H, W) in [0, 1] to normalized (x, y) in [0, 1], shape (N, 2).

A network may set two class/instance attributes that the rest of the project reads:
- ``min_input_size``: the smallest H and W it can take (checked before any training);
- ``weights_used``: where its initial weights came from (recorded in results.json).
"""
