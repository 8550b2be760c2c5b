#!/usr/bin/env bash
# A larger fault run than `npm test` does: RUNS runs (default 5) of ROUNDS agent kills (default 20)
# each, every run with a fresh seed (printed in the test name, so a failure can be replayed with
# OPSTREAM_FAULT_SEED=<seed>).
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/setup.mjs --nats-server
for run in $(seq 1 "${RUNS:-5}"); do
  echo "soak run ${run}/${RUNS:-5}"
  OPSTREAM_FAULT_ROUNDS="${ROUNDS:-20}" npx vitest run test/fault.test.ts
done
