#!/usr/bin/env bash
# Every GPU path of nightshift on one CUDA machine, in under 8 minutes (after the install):
#   every family through `nightshift train` on CUDA (sleep, eval, samples, SIGTERM + resume, CPU re-eval),
#   NCCL DDP through the local backend (every collective on a real 1-rank group; 2 ranks with 2+ GPUs),
#   Ray Train with one GPU worker, the Modal body (`giant.local()`) on CUDA,
#   and throughput: transformer gpt2-124m bf16 eager vs torch.compile (tokens/s, MFU), holographic
#   samples/s at context 64/512/4096 and kNN queries/s over 1M and 10M keys, attractor a1 tokens/s.
# Writes OUT_DIR/gpu_check.json (+ logs/) and prints a table; exit 1 if any section failed.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]          # OUT_DIR: default $OUT, else ./gpu_check_out
#   bash benchmarks/gpu_check.sh --install-only     # only build .venv-gpu (minutes: CUDA torch is GBs)
#   ONLY=ddp_nccl,ray_gpu bash benchmarks/gpu_check.sh
#
# Installs what it needs into .venv-gpu (a fresh machine needs only Python >= 3.11 and PyPI):
# `pip install -c .ci/constraints.txt -e .`, whose torch pin is PyPI's CUDA build on Linux
# (TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 picks another). No data beyond the checkout:
# the text is generated. On a machine without a CUDA GPU it prints one line and exits 0.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
INSTALL_ONLY=0
if [ "${1:-}" = "--install-only" ]; then INSTALL_ONLY=1; shift; fi
OUT_DIR="${1:-${OUT:-$ROOT/gpu_check_out}}"
VENV="${NIGHTSHIFT_GPU_VENV:-$ROOT/.venv-gpu}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "gpu_check: no CUDA device (nvidia-smi lists no GPU); nothing to check"
    exit 0
fi

log() { echo "gpu_check: $*" >&2; }

pick_python() {
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

installed() {
    "$VENV/bin/python" - <<'EOF' 2>/dev/null
import sys
import torch, ray, modal, nightshift.orchestrator  # noqa: F401
sys.exit(0 if torch.cuda.is_available() else 1)
EOF
}

if ! installed; then
    PY="$(pick_python)" || { log "needs Python >= 3.11 (found: $(python3 --version 2>&1))"; exit 1; }
    log "installing into $VENV with $PY ($($PY --version)); CUDA torch from ${TORCH_INDEX_URL:-PyPI}"
    if [ ! -x "$VENV/bin/python" ] && ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"  # Debian/Ubuntu without python3-venv: virtualenv from PyPI instead
        { "$PY" -m pip install -q --user virtualenv || "$PY" -m pip install -q --user --break-system-packages virtualenv; } \
            && "$PY" -m virtualenv -q "$VENV" || { log "cannot create a virtual environment with $PY"; exit 1; }
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip || exit 1
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$VENV/bin/python" -m pip install -q "$(grep -i '^torch==' .ci/constraints.txt)" \
            --index-url "$TORCH_INDEX_URL" || exit 1
    fi
    "$VENV/bin/python" -m pip install -q -c .ci/constraints.txt -e . || { log "pip install failed"; exit 1; }
    if ! installed; then
        log "torch cannot use the GPU nvidia-smi lists (another build: TORCH_INDEX_URL=https://download.pytorch.org/whl/cuXYZ):"
        "$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "CUDA build", torch.version.cuda)' >&2
        nvidia-smi --query-gpu=name,driver_version --format=csv >&2
        exit 1
    fi
fi
[ "$INSTALL_ONLY" = 1 ] && { log "installed: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"; exit 0; }

ARGS=(--out "$OUT_DIR")
[ -n "${ONLY:-}" ] && ARGS+=(--only "$ONLY")
# the sections keep to 470 s between them; this outer limit only catches a hang in the driver itself
timeout 560 "$VENV/bin/python" -m benchmarks.gpu_check "${ARGS[@]}"  # from $ROOT: benchmarks/ is the checkout's
