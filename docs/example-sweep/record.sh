#!/usr/bin/env bash
# Re-record docs/example-sweep: one command, from the repository root (offline: the pg19 sample in ../shared/data).
#   bash docs/example-sweep/record.sh [STORE]      (default store: a fresh folder under /tmp)
# Heavy: ~16 cells of up to a minute of compute each; on a shared machine run it under the bench lock:
#   flock /tmp/nightshift-bench.lock bash docs/example-sweep/record.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
store="${1:-$(mktemp -d /tmp/nightshift-example-XXXXXX)}"
export TIKTOKEN_CACHE_DIR="${TIKTOKEN_CACHE_DIR:-$(cd .. && pwd)/shared/data/tokenizers/tiktoken_cache}"
python="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"  # PYTHON=... to choose
run() { "$python" -m orchestrator.cli "$@"; }
echo "store: $store   load: $(uptime)" >&2
start=$(date +%s)
run sweep --source local:../shared/data/pg19 --sizes 1MB,4MB \
    --models transformer:tiny,attractor:a1,holographic:base,macro_unit:base \
    --epochs 1 --budget-minutes 1 --valid-bytes 64KB --seeds 2 --threads 1 \
    --set transformer.eval_every=3 --set attractor.eval_every=30 \
    --set attractor.sleep_every=1024 --set holographic.sleep_every=128 --set macro_unit.sleep_every=32 \
    --store "$store" --report docs/example-sweep --no-progress
echo "wall: $(( $(date +%s) - start )) s   load: $(uptime)" >&2
