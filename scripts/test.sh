#!/usr/bin/env bash
# The project's test command (README command 2; .ci/run calls it). On a fresh machine it installs what the
# tests need (the real local servers, cached in ~/.cache/oaicompat; Chromium from Debian), then:
#   1. brings the real servers up and runs every suite live against them,
#   2. replays the same providers from their cassettes and fails if any outcome differs from the live run,
#   3. replays every recorded provider offline (the main job's suite run),
#   4. runs the harness's own tests,
# and always brings the servers down. Fails if any pytest run collects no test (exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
ART="${OAICOMPAT_ARTIFACTS:-$(mktemp -d -t oaicompat-test.XXXXXX)}"
mkdir -p "$ART"
SERVERS="${OAICOMPAT_SERVERS_LIST:-llama-server,llama-cpp-python,vllm,litellm}"
status=0

step() { printf '\n=== %s\n' "$*" >&2; }
run_pytest() {  # fail on any non-zero exit, including 5 (no tests ran)
  python -m pytest -p no:cacheprovider "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest ran no test: $*" >&2; fi
  if [ "$rc" -ne 0 ]; then status=1; fi
  return "$rc"
}

step "Chromium (for the report tests)"
scripts/install-chromium.sh || status=1

step "real local servers: $SERVERS (built once into ~/.cache/oaicompat)"
env_lines="$(python -m oaicompat.cli servers up ${SERVERS//,/ })"
up_rc=$?
trap 'python -m oaicompat.cli servers down >&2' EXIT
eval "$env_lines"
if [ "$up_rc" -eq 0 ]; then
  export OAICOMPAT_SERVERS=1 OAICOMPAT_SERVERS_LIVE=1   # enables the tests marked `servers`
  step "suites live against the real servers (one shard per server, in parallel)"
  pids=()
  for p in ${SERVERS//,/ }; do
    python -m pytest -p no:cacheprovider suites --provider="$p" --live --results "$ART/live-$p.json" -q \
      > "$ART/live-$p.log" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; rc=$?
    p=$(echo "${SERVERS//,/ }" | cut -d' ' -f$((i + 1)))
    tail -n 15 "$ART/live-$p.log"
    if [ "$rc" -ne 0 ]; then echo "live run of $p failed (exit $rc): $ART/live-$p.log" >&2; status=1; fi
  done
  step "the same providers replayed from their cassettes"
  run_pytest suites --provider="$SERVERS" --results "$ART/recorded.json" -q
  step "live outcomes must match the recorded ones"
  for p in ${SERVERS//,/ }; do
    python -m oaicompat.cli compare "$ART/recorded.json" "$ART/live-$p.json" || status=1
  done
else
  echo "oaicompat servers up failed (the message above names the log)" >&2
  status=1
fi

step "offline replay of every recorded provider"
run_pytest suites --results "$ART/replay.json" -q

step "the harness's own tests"
run_pytest tests -q -m "not fuzz"

echo "artifacts: $ART" >&2
exit "$status"
