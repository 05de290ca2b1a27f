#!/usr/bin/env bash
# The request-path cost of the audit trail: closed-loop req/s of one
# loggate with `[audit] sink = "file"` against one with the audit off, same
# build, same sink, same ~1 KiB /logs3 batch, interleaved rounds in one run
# (median of each). Loopback only, bounded in time (about a minute).
# Usage: bash benches/audit_overhead.sh     env: DURATION ROUNDS CONNS BASE_PORT
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
BASE_PORT=${BASE_PORT:-19700}
TOKEN=bt-st-demo_writer_0123456789abcdefghijklmnop   # config/policy.json: update on checkout's log
PROJECT=5d1e7c3a-2f4b-4e8d-a6c9-1b0f3e5d7a21
P_SINK=$((BASE_PORT + 1)) P_OFF=$((BASE_PORT + 2)) P_ON=$((BASE_PORT + 3))
log() { echo "audit_overhead.sh: $*" >&2; }

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
log "building (release)"
cargo build --release --quiet --bin loggate --example sink
WORK=$(mktemp -d /tmp/loggate-audit.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; log "port $1 never opened"; exit 1; }

printf '{"rows":[{"id":"r1","project_id":"%s","log_id":"g","input":{"messages":[{"role":"user","content":"How do I rotate the API key for service #1? Include the CLI command."}]},"output":"Run `svc keys rotate --service <name>`.\\nThe old key stays valid for 24 hours.","metadata":{"model":"gpt-4o-mini","temperature":0.2},"metrics":{"start":1764093567.123,"end":1764093568.456,"tokens":153}}],"api_version":2}' "$PROJECT" >"$WORK/body.json"
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local f = io.open("$WORK/body.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA

target/release/examples/sink "127.0.0.1:$P_SINK" "$TOKEN" 2>"$WORK/sink.log" & PIDS+=($!)
start() { # port admin_port extra-env...
  local port=$1 admin=$2; shift 2
  env LOGGATE_SERVER__LISTEN="127.0.0.1:$port" LOGGATE_ADMIN__LISTEN="127.0.0.1:$admin" \
    LOGGATE_UPSTREAM__API_URL="http://127.0.0.1:$P_SINK" LOGGATE_UPSTREAM__APP_URL="http://127.0.0.1:$P_SINK" "$@" \
    target/release/loggate serve --config config/loggate.toml 2>"$WORK/loggate-$port.log" & PIDS+=($!)
}
start "$P_OFF" $((P_OFF + 10))
start "$P_ON" $((P_ON + 10)) LOGGATE_AUDIT__SINK=file LOGGATE_AUDIT__PATH="$WORK/audit.jsonl"
for p in "$P_SINK" "$P_OFF" "$P_ON"; do wait_port "$p"; done
for p in "$P_OFF" "$P_ON"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary "@$WORK/body.json" "http://127.0.0.1:$p/logs3")
  [[ "$code" == 200 ]] || { log "port $p answered $code"; exit 1; }
  wrk -t2 -c"$CONNS" -d2s -s "$WORK/post.lua" "http://127.0.0.1:$p/logs3" >/dev/null
done
declare -A RPS
for round in $(seq "$ROUNDS"); do
  order=("$P_OFF" "$P_ON"); ((round % 2 == 0)) && order=("$P_ON" "$P_OFF")
  for p in "${order[@]}"; do
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$p/logs3")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then log "errors on port $p: $out"; exit 1; fi
    RPS[$p]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(median <<<"${RPS[$P_OFF]}") on=$(median <<<"${RPS[$P_ON]}")
records=$(wc -l <"$WORK/audit.jsonl")
echo "| audit | req/s (median of $ROUNDS x ${DURATION}s, $CONNS connections) | rounds |"
echo "|---|--:|---|"
echo "| off | $off | ${RPS[$P_OFF]}|"
echo "| file sink | $on | ${RPS[$P_ON]}|"
python3 -c "print(f'file sink / off = {float($on)/float($off):.3f}; {$records} audit records written')"
