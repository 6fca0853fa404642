#!/usr/bin/env bash
# The project's test command (README command 2; .ci/run calls it). On a fresh machine it installs what the
# tests need (the real local servers, cached in ~/.cache/oaicompat; Chromium from Debian), then:
#   0. proves README command 1 on a fresh machine: a clean virtualenv, `pip install -e .` and `oaicompat run`
#      in a temporary copy of the checkout leave reports/ exactly as committed (the real tree is not written),
#   1. brings the real servers up and runs every suite live against them,
#   2. replays the same providers from their cassettes and fails if any outcome differs from the live run,
#   3. replays every recorded provider offline (the main job's suite run),
#   4. checks that providers.yaml's expectations agree with the imported evidence (validate --evidence),
#   5. runs ruff and mypy over the tree (configured in pyproject.toml),
#   6. runs the harness's own tests (`pytest tests`; plain `pytest` runs the conformance suites only),
# and always brings the servers down. Fails if any pytest run collects no test (exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
ART="${OAICOMPAT_ARTIFACTS:-$(mktemp -d -t oaicompat-test.XXXXXX)}"
mkdir -p "$ART"
# The live stages. By default a representative subset that keeps a fresh machine within an hour: vLLM, llama-server
# with LiteLLM in front, the capable model on llama-server with the Portkey gateway in front, and the capable model
# behind a template that opens <think> (the reasoning path) on llama-server. `--full` runs every real server live
# (llama-cpp-python, transformers serve and the other capable-model servers too), as the nightly workflow does;
# every recorded provider is replayed offline either way.
DEFAULT_SERVERS="vllm,llama-server,litellm,llama-server-qwen,portkey,llama-server-qwen-think"
FULL_SERVERS="vllm,llama-cpp-python,llama-server,litellm,transformers-serve,llama-server-qwen,portkey,vllm-qwen,llama-cpp-python-qwen"
FULL_SERVERS+=",llama-server-qwen-think,litellm-qwen,portkey-think,vllm-qwen-think,transformers-serve-qwen"
FULL_SERVERS+=",transformers-serve-vision,vllm-vision,llama-server-vision"
case "${1:-}" in
  --full) DEFAULT_SERVERS="$FULL_SERVERS" ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--full]   (OAICOMPAT_SERVERS_LIST=a,b picks the live stages)" >&2; exit 2 ;;
esac
SERVERS="${OAICOMPAT_SERVERS_LIST:-$DEFAULT_SERVERS}"
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

# README command 1 (`pip install -e . && oaicompat run`) on a fresh machine must reproduce reports/ byte for byte.
# It runs in a copy of the checkout as it stands (tracked and untracked files, not ignored ones), committed there
# so that `git status` shows only what the run changed; the virtualenv gets the main dependencies only.
fresh_install() {
  local venv="$ART/fresh-venv" copy rc changed
  copy="$(mktemp -d -t oaicompat-fresh.XXXXXX)" || return 1
  git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$copy" || return 1
  git -C "$copy" init -q && git -C "$copy" add -A \
    && git -C "$copy" -c user.name=oaicompat -c user.email=test@invalid commit -q -m "the checkout under test" \
    || return 1
  if ! { python -m venv "$venv" && "$venv/bin/python" -m pip install -q -e "$copy"; }; then
    echo "a clean virtualenv could not install the checkout (pip install -e .)" >&2; return 1
  fi
  (cd "$copy" && env -u PYTHONPATH "$venv/bin/oaicompat" run) >"$ART/fresh-run.log" 2>&1; rc=$?
  changed="$(git -C "$copy" status --porcelain -- reports/)"
  if [ -n "$changed" ]; then
    echo "README command 1 in a clean virtualenv changed $(wc -l <<<"$changed") path(s) under reports/ (log:" \
         "$ART/fresh-run.log). First paths, then the first differing lines:" >&2
    head -n 5 <<<"$changed" >&2
    git -C "$copy" diff --no-color -U0 -- reports/ | grep -E '^[-+]' | grep -vE '^(---|\+\+\+) ' | cut -c1-200 \
      | head -n 12 >&2
    return 1
  fi
  if [ "$rc" -ne 0 ]; then echo "oaicompat run exited $rc in a clean virtualenv (log: $ART/fresh-run.log)" >&2; return 1; fi
  rm -rf "$copy"
}
step "README command 1 from a clean virtualenv: pip install -e . && oaicompat run leaves reports/ unchanged"
fresh_install || status=1

# One server at a time: two llama.cpp engines (or vLLM's CPU worker) on two cores spin against each other and
# slow generation a hundredfold. A gateway shares the stage of the server it proxies (FRONTS below).
stage_servers() {  # $1: the servers to start; $2: the providers to run live against them
  step "real local servers: $1 (built once into ~/.cache/oaicompat)"
  local env_lines up_rc p
  env_lines="$(python -m oaicompat.cli servers up $1)"; up_rc=$?
  eval "$env_lines"
  if [ "$up_rc" -ne 0 ]; then
    echo "oaicompat servers up $1 failed (the message above names the log)" >&2
    status=1
    python -m oaicompat.cli servers down >&2
    return
  fi
  for p in $2; do
    step "suites live against $p"
    run_pytest suites --provider="$p" --live --results "$ART/live-$p.json" -q
    step "$p: live outcomes must match the recorded ones"
    run_pytest suites --provider="$p" --results "$ART/recorded-$p.json" -q
    python -m oaicompat.cli compare "$ART/recorded-$p.json" "$ART/live-$p.json" || status=1
  done
  step "the servers' own tests (a chat completion each; the key kept out of logs and argv): $1"
  OAICOMPAT_SERVERS=1 run_pytest tests/test_servers.py -q -m servers -rs
  step "oaicompat nightly, live against: $2"
  OAICOMPAT_SERVERS_LIVE=1 OAICOMPAT_SERVERS_LIST="${2// /,}" run_pytest tests/test_nightly.py -q -k real_servers
  python -m oaicompat.cli servers down >&2
}

trap 'python -m oaicompat.cli servers down >&2' EXIT
# A gateway runs in the stage of the server it fronts (alone with it when that server is not a stage of its own);
# which server each gateway fronts is its spec's `upstream` (oaicompat/servers/specs.py).
declare -A FRONTS=()
while read -r gateway upstream; do FRONTS[$gateway]=$upstream; done < <(
  python -c 'from oaicompat.servers.specs import SPECS
for spec in SPECS.values():
    if spec.upstream: print(spec.name, spec.upstream)')
chosen() { [[ ",$SERVERS," == *",$1,"* ]]; }
for stage in ${SERVERS//,/ }; do
  upstream="${FRONTS[$stage]:-}"
  if [[ -n "$upstream" ]]; then
    chosen "$upstream" || stage_servers "$upstream $stage" "$stage"
    continue
  fi
  members="$stage"
  for gateway in $(printf '%s\n' "${!FRONTS[@]}" | sort); do
    if [[ "${FRONTS[$gateway]}" == "$stage" ]] && chosen "$gateway"; then members+=" $gateway"; fi
  done
  stage_servers "$members" "$members"
done

step "offline replay of every recorded provider"
run_pytest suites --results "$ART/replay.json" -q

step "providers.yaml agrees with the imported evidence (oaicompat validate --evidence)"
python -m oaicompat.cli validate --evidence || status=1

step "ruff and mypy (pyproject.toml says what they check)"
python -m ruff check . || status=1
python -m mypy || status=1

step "the harness's own tests (pytest tests)"
run_pytest tests -q -m "not fuzz"

echo "artifacts: $ART" >&2
exit "$status"
