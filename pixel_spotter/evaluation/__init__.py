"""Evaluation: metrics in pixels, their names, distances, figures, number formatting and the robustness grid."""
