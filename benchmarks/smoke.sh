#!/usr/bin/env bash
# Every benchmark at a small size, so that none of them rots: CI runs this after the tests.
# It checks that each one runs to its table, not how fast anything is (the sizes are far too
# small for the numbers to mean much, and CI machines are noisy).
set -euo pipefail
cd "$(dirname "$0")"
run() {
    echo "== python benchmarks/$*"
    python3 "$@"
}
run client.py --quick
run server.py --quick
run worker.py -n 400 -c 4 --rounds 1 --executor thread asyncio process --observe none metrics both:sampled
run batch.py -n 2000 --rounds 1 --e2e-rounds 1
run unique.py --quick
run slot.py -n 2000
run mutate_latency.py --entries 20000 --storage memory
