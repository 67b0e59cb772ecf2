"""Numbers for people, the same way everywhere (run log, sweep summary, report)."""


def format_px(value) -> str:
    """A pixel error: 3 decimals, but below 0.0005 px scientific ("1.4e-06", not "0.000"), so an exact
    model and a merely good one never print the same; None (a non-finite or missing value) prints "—"."""
    if value is None:
        return "—"
    return f"{value:.1e}" if 0 < abs(value) < 5e-4 else f"{value:.3f}"
