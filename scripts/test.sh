#!/usr/bin/env bash
# test.sh — the whole test suite, as the README states it.
#
# 1. Makes sure PostgreSQL answers on 127.0.0.1:5432 (starts the machine's
#    cluster if it is down): the store suite runs against it.
# 2. Starts the local model server (scripts/local-model.sh; the first run fetches
#    a prebuilt llama-server, or builds one, and caches it) and exports its URLs as HYBRID_LIVE_* for the
#    live test suites, which run against it over both protocols.
# 3. Runs every test of the workspace (unit, integration, doc tests).
#
# With CI=true a missing PostgreSQL or local model is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test.sh: %s\n' "$*" >&2; }

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "PostgreSQL is not answering; starting the local cluster"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  export HYBRID_TEST_POSTGRES_URL="${HYBRID_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
else
  say "PostgreSQL is unavailable; the PostgreSQL store tests will $([ "${CI:-}" = true ] && echo fail || echo skip)"
fi

started_model=0
if [ "${HYBRID_SKIP_LIVE:-}" != 1 ]; then
  if ! scripts/local-model.sh status >/dev/null 2>&1; then started_model=1; fi
  if exports=$(scripts/local-model.sh start --env); then
    # Only the HYBRID_LIVE_* names: the rest of the suite must not see these URLs.
    eval "$(printf '%s\n' "$exports" | sed -n \
      -e 's/^export OPENAI_BASE_URL=/export HYBRID_LIVE_OPENAI_BASE_URL=/p' \
      -e 's/^export ANTHROPIC_BASE_URL=/export HYBRID_LIVE_ANTHROPIC_BASE_URL=/p' \
      -e 's/^export HYBRID_LOCAL_MODEL=/export HYBRID_LIVE_MODEL=/p')"
    say "live suites run against ${HYBRID_LIVE_OPENAI_BASE_URL:-?} (model ${HYBRID_LIVE_MODEL:-?})"
  else
    say "the local model server did not start; the live suites will $([ "${CI:-}" = true ] && echo fail || echo skip)"
  fi
fi
cleanup() { if [ "$started_model" = 1 ]; then scripts/local-model.sh stop >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

cargo test --workspace --lib --bins --tests --examples --locked
cargo test --workspace --doc --locked
