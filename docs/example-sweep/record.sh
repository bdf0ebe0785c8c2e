#!/usr/bin/env bash
# Re-record docs/example-sweep: `nightshift demo` on the offline pg19 sample, its report written here.
#   bash docs/example-sweep/record.sh [STORE]      (default store: a fresh folder under /tmp)
# On a shared machine run it under the bench lock: flock /tmp/nightshift-bench.lock bash docs/example-sweep/record.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
store="${1:-$(mktemp -d /tmp/nightshift-example-XXXXXX)}"
export TIKTOKEN_CACHE_DIR="${TIKTOKEN_CACHE_DIR:-$(cd .. && pwd)/shared/data/tokenizers/tiktoken_cache}"
python="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"  # PYTHON=... to choose
echo "store: $store   load: $(uptime)" >&2
start=$(date +%s)
"$python" -m nightshift.orchestrator.cli demo --source local:../shared/data/pg19 --store "$store" --report docs/example-sweep \
    --no-progress
echo "wall: $(( $(date +%s) - start )) s   load: $(uptime)" >&2
