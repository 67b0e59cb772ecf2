"""Numbers for people, the same way everywhere (run log, sweep summary, report)."""


def format_px(value) -> str:
    """A pixel error: 3 decimals, but below 0.0005 px scientific ("1.4e-06", not "0.000"), so an exact
    model and a merely good one never print the same; None (a non-finite or missing value) prints "—"."""
    if value is None:
        return "—"
    return f"{value:.1e}" if 0 < abs(value) < 5e-4 else f"{value:.3f}"


def test_line(test: dict) -> str:
    """A run's test metrics in one line: a one-answer run's errors, or a frame run's localization scores."""
    if "euclid_px" in test or "exact_acc" in test:
        exact = test.get("exact_acc")
        return (f"euclid {format_px(test.get('euclid_px'))} px, rmse {format_px(test.get('rmse_px'))} px, exact "
                f"{'—' if exact is None else f'{100 * exact:.1f}%'}")
    parts = [f"{name} {test[name]:.3f}" for name in ("f1", "jaccard", "exact_frames") if test.get(name) is not None]
    if test.get("rmse_px") is not None:
        parts.append(f"rmse {format_px(test['rmse_px'])} px")
    if test.get("efficiency") is not None:
        parts.append(f"efficiency {test['efficiency']:.1f}")
    return ", ".join(parts) or "no metrics"
