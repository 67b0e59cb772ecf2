#!/usr/bin/env bash
# Create or repair the virtualenv (.venv) and install pixel-spotter into it. Safe to run again:
# it does nothing when everything already imports and neither pyproject.toml nor the extras changed.
# Extras: EXTRAS=test (default); CI=true installs every optional extra too, so the tests that need one run.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ -z "${EXTRAS:-}" ]; then
    if [ "${CI:-}" = "true" ]; then EXTRAS=test,sweep,export; else EXTRAS=test; fi
fi
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
    echo "setup: creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [ "$VENV/.installed" -nt pyproject.toml ] && grep -qx "$EXTRAS" "$VENV/.installed" 2>/dev/null && "$VENV/bin/python" -c \
    "import torch, torchvision, lightning, hydra, torchmetrics, tensorboard, matplotlib, numpy, PIL, jinja2, pytest, pixel_spotter" 2>/dev/null; then
    exit 0
fi
echo "setup: installing torch, torchvision and pixel-spotter[$EXTRAS] into $VENV (about 2 minutes)"
# Pinned torch/torchvision first: pip takes these from the local disk; an unpinned torch may download GBs.
"$VENV/bin/pip" install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -q --disable-pip-version-check -e ".[$EXTRAS]"
echo "$EXTRAS" > "$VENV/.installed"
echo "setup: done"
