#!/usr/bin/env bash
# Every benchmark, one after the other, each rewriting its section of docs/benchmarks.md.
# Run it on a quiet machine: the figures are only as good as the machine is idle.
#   bench/run_all.sh            all of them
#   QUICK=1 bench/run_all.sh    fewer and shorter runs (a smoke test of the scripts)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ "${QUICK:-}" = 1 ]; then
    INGEST=(--runs 1 --duration 3); FANOUT=(--changes 20)
else
    INGEST=(--runs 5 --duration 5); FANOUT=(--changes 100)
fi

echo "== load before: $(cat /proc/loadavg)"
echo "== ingest"
$PY -m bench.ingest "${INGEST[@]}"

# Scripts of the other issues. One that writes its own section (bench.report.write_section)
# runs as is; the markdown another prints becomes its section.
others() {
    local name=$1 title=$2 script=$3
    if [ ! -f "bench/$script.py" ]; then
        echo "== $name: bench/$script.py is not there yet, skipped"
    elif grep -q write_section "bench/$script.py"; then
        echo "== $name"
        $PY -m "bench.$script"
    else
        echo "== $name"
        $PY -m "bench.$script" | tee "/tmp/trackit-bench-$name.out"
        $PY -m bench.report "$name" "$title" "$PY -m bench.$script" < "/tmp/trackit-bench-$name.out"
    fi
}
others push_latency "Webhook-to-subscriber latency" push_latency
others reconcile "Worker drain" reconcile

echo "== fan-out"
$PY -m bench.fanout "${FANOUT[@]}"
echo "== load after: $(cat /proc/loadavg)"
echo "docs/benchmarks.md updated"
