#!/usr/bin/env bash
# Create or repair the virtualenv (.venv) and install pixel-spotter into it. Safe to run again:
# it does nothing when everything already imports and neither pyproject.toml nor the extras changed.
# Extras: EXTRAS=test,sweep,export by default (and in CI): the tests, the parallel launchers and Optuna
# search, and model export, so every command in README.md and docs/ works. EXTRAS=test is the smallest
# install. The Ray launcher is in no extra (docs/sweeps.md says how to add it).
# A broken .venv (no working python or pip, a package that no longer imports) is rebuilt or reinstalled.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test,sweep,export}
# what must import afterwards: the base install, plus one module per extra asked for
IMPORTS="torch, torchvision, lightning, hydra, torchmetrics, tensorboard, matplotlib, numpy, PIL, jinja2, scipy, tifffile, pixel_spotter"
case ",$EXTRAS," in *,test,*) IMPORTS="$IMPORTS, pytest, xdist, ruff" ;; esac
case ",$EXTRAS," in *,sweep,*) IMPORTS="$IMPORTS, hydra_plugins.hydra_joblib_launcher, hydra_plugins.hydra_submitit_launcher, optuna" ;; esac
case ",$EXTRAS," in *,export,*) IMPORTS="$IMPORTS, onnx, onnxruntime, onnxscript" ;; esac
case ",$EXTRAS," in *,picasso,*) IMPORTS="$IMPORTS, picasso" ;; esac
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "setup: creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [ "$VENV/.installed" -nt pyproject.toml ] && grep -qx "$EXTRAS" "$VENV/.installed" 2>/dev/null \
    && "$VENV/bin/python" -c "import $IMPORTS" 2>/dev/null; then
    exit 0
fi
rm -f "$VENV/.installed"
echo "setup: installing torch, torchvision and pixel-spotter[$EXTRAS] into $VENV (about 2 minutes)"
# Pinned torch/torchvision first: pip takes these from the local disk; an unpinned torch may download GBs.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
# Hydra's Optuna sweeper plugin (pinned optuna<3) was replaced by our own sweeper: a venv made before must lose it,
# or both would register hydra/sweeper=optuna.
"$VENV/bin/python" -m pip uninstall -q -y --disable-pip-version-check hydra-optuna-sweeper >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
if ! "$VENV/bin/python" -c "import $IMPORTS"; then
    echo "setup: the install finished but something still does not import (above); delete $VENV and run make setup again" >&2
    exit 1
fi
echo "$EXTRAS" > "$VENV/.installed"
echo "setup: done. To use python, pixel-spotter and tensorboard in this shell: source $VENV/bin/activate"
