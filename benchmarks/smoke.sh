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

# --url, --server-pid and --external: a separate server (here werk's own, started as any
# server would be), and a program that keeps the --external contract (contract.py).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
werk server --bind "127.0.0.1:$port" --storage memory --no-web --log-level WARNING &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
python3 -c "
import socket, sys, time
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(('127.0.0.1', $port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit('werk server did not start')
        time.sleep(0.1)
"
url="tcp://127.0.0.1:$port"
contract="python3 contract.py"
run client.py --quick --url "$url" --external bare="$contract"
run server.py --quick --no-in-process --url "$url" --server-pid "$server" --external bare="$contract"
run worker.py -n 400 -c 4 --rounds 1 --executor thread --url "$url" --server-pid "$server" --external bare="$contract"
