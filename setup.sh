#!/usr/bin/env bash
# Creates .venv with everything ws3d-jax needs. Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

# open3d's wheel links against libusb-1.0, a system library that slim images lack.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if command -v apt-get >/dev/null; then
    echo "setup: installing libusb-1.0-0 (needed by open3d)"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "setup: open3d needs the system library libusb-1.0 (package libusb-1.0-0); install it" >&2
    exit 1
  fi
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do command -v "$c" >/dev/null && { PY=$c; break; }; done
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# Skip pip entirely when the pinned set is already installed (keeps re-runs fast).
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned packages into .venv (about 2 minutes and 3.9 GB on a fresh machine)"
  .venv/bin/python -m pip install -q --upgrade pip
  # pip -q is silent for minutes: say now and then that it is still at work.
  .venv/bin/python -m pip install -q -r requirements.txt &
  pip_pid=$!
  while kill -0 "$pip_pid" 2>/dev/null; do
    sleep 20
    if kill -0 "$pip_pid" 2>/dev/null; then echo "setup: still installing (${SECONDS} s)"; fi
  done
  wait "$pip_pid"
  echo "$want" > "$stamp"
fi

# The fused submanifold convolution for the CPU (ws3d_jax/sparse/fused.py), compiled for this
# machine in a few seconds. Without a C++ compiler the network runs the pure-JAX path instead.
if ! .venv/bin/python -c "from ws3d_jax.sparse import fused; raise SystemExit(not fused.library_path().exists())" 2>/dev/null; then
  if command -v g++ >/dev/null; then
    .venv/bin/python -m ws3d_jax.sparse.fused --build
  else
    echo "setup: no g++ here: the fused CPU kernel is not built, and the network runs its pure-JAX path (slower on CPU)"
  fi
fi
