#!/usr/bin/env bash
# demo.sh — the main job: real tasks through HybridPlatform on a local model,
# over both wire protocols, with no API key.
#
# Starts (fetching or building it on first use) the local llama-server of scripts/local-model.sh,
# writes a config that points both platforms at it — `openai` over
# /v1/chat/completions, `claude` over /v1/messages — and runs:
#   1. a conversation task, which the router sends to `openai`;
#   2. a research task, which the router sends to `claude`;
#   3. a multi-step system task, which the router sends to the hybrid route:
#      the built-in plan-execute-verify workflow (planning on `openai`,
#      execution with tools on `claude`, verification on `openai`);
#   4. `hybrid metrics` over what the store now holds.
# With arguments, runs `hybrid run ARGS…` instead of 1–3:
#   scripts/demo.sh --json --platform claude "Explain quantum computing"
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'demo.sh: %s\n' "$*" >&2; }
started=$SECONDS
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hybrid"
mkdir -p "$cache"

# The model server and the binary at once: neither waits for the other.
# The server: seconds once cached; the first time ~5 s to fetch a prebuilt
# llama-server and the model (8-20 min where it has to be built from source).
server_env=$(mktemp)
trap 'rm -f "$server_env"' EXIT
say "starting the local model server (scripts/local-model.sh; its progress below)"
scripts/local-model.sh start --env >"$server_env" &
server=$!
# The binary: the dev profile, the one scripts/test.sh builds too, so each
# reuses what the other compiled. The first build takes ~4 min on 2 cores
# (a release build took ~21), later ones seconds.
if [ -x target/debug/hybrid ]; then
  say "building the hybrid binary (dev profile; seconds when nothing changed)"
else
  say "building the hybrid binary (dev profile; ~4 min on 2 cores the first time)"
fi
cargo build --locked -p hybrid-cli
if wait "$server"; then :; else
  code=$?
  say "the local model server did not start (the line above says why; exit $code)"
  exit "$code"
fi
eval "$(cat "$server_env")"
rm -f "$server_env"
say "ready after $((SECONDS - started)) s"

config="$cache/local.hybrid.toml"
cat >"$config" <<TOML
# Written by scripts/demo.sh: both platforms on the local llama-server.
[platforms.openai]
provider = "openai"
model = "$HYBRID_LOCAL_MODEL"
base_url = "$OPENAI_BASE_URL"
max_tokens = 200

[platforms.claude]
provider = "anthropic"
model = "$HYBRID_LOCAL_MODEL"
base_url = "$ANTHROPIC_BASE_URL"
max_tokens = 200
TOML
hybrid=(target/debug/hybrid --config "$config")

if [ "$#" -gt 0 ]; then
  exec "${hybrid[@]}" run "$@"
fi
echo "\$ hybrid run \"Explain quantum computing in two sentences.\"" >&2
"${hybrid[@]}" run "Explain quantum computing in two sentences."
echo >&2
echo "\$ hybrid run --type research \"What is the capital of France? Answer in one sentence.\"" >&2
"${hybrid[@]}" run --type research "What is the capital of France? Answer in one sentence."
echo >&2
work="$cache/demo-workspace"
mkdir -p "$work"
printf 'service: api\nport: 8080\n' >"$work/app.yaml"
echo "\$ hybrid run --system-access --multi-step --approve-as demo --workdir $work \"Check the app.yaml in this directory and report its port.\"" >&2
"${hybrid[@]}" run --system-access --multi-step --approve-as demo --workdir "$work" \
  "Check the app.yaml in this directory and report its port."
echo >&2
echo "\$ hybrid metrics" >&2
"${hybrid[@]}" metrics
