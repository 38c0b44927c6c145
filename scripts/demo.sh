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

eval "$(scripts/local-model.sh start --env)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hybrid"
mkdir -p "$cache"
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

echo "demo.sh: building the hybrid binary (release)…" >&2
cargo build --release --quiet --locked -p hybrid-cli
hybrid=(target/release/hybrid --config "$config")

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
