#!/usr/bin/env bash
# Loopback load test: loggate against nginx, same load generator, same
# upstream sink, same /logs3 batches with a valid writer token. Bodies come
# from `examples/bodies.rs` (the rows the criterion benches inspect): by
# default LLM-like spans (escapes, raw and \u-escaped UTF-8, nested
# metadata), one batch of 1 row and one of 100 rows (~1.4 KiB a row), each
# measured in the same run. BODIES="llm:1 llm:100 escape_dense:100 plain:100"
# adds the other shapes.
#
#   (a) sink           the upstream sink directly
#   (b) proxy_pass     nginx -> sink (keepalive upstream)
#   (c) auth_request   nginx + auth_request (subrequest to the sink's token check) -> sink
#   (d) authz-off      loggate built with --features bench-authz-off -> sink
#   (e) loggate        loggate, authorization on, decision cache warm -> sink
#
# Per body: closed loop (wrk, $CONNS connections, $ROUNDS interleaved rounds
# of $DURATION s per configuration after a warm-up; median reported, plus
# the proxy's CPU time per request), then open loop (oha at a fixed rate:
# half of (c)'s maximum for 1-row batches, 2,000 req/s for bigger ones,
# or $RATE; with latency correction, $LAT_ROUNDS interleaved rounds of
# $LAT_DURATION s; median per percentile) for p50/p99/p99.9. Prints a
# markdown table per body.
#
# Loopback only, bounded in time (about 5 minutes per body once built).
# Installs what it lacks: nginx-light and wrk (Debian), oha (cargo install).
# Usage: bash benches/load.sh        env: BODIES DURATION ROUNDS LAT_DURATION LAT_ROUNDS RATE CONNS BASE_PORT KEEP
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-5}
LAT_DURATION=${LAT_DURATION:-6}
LAT_ROUNDS=${LAT_ROUNDS:-5}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
BODIES=${BODIES:-"llm:1 llm:100"}
BASE_PORT=${BASE_PORT:-19900}
TOKEN=bt-st-demo_writer_0123456789abcdefghijklmnop   # config/policy.json: update on checkout's log
PROJECT=5d1e7c3a-2f4b-4e8d-a6c9-1b0f3e5d7a21

P_SINK=$((BASE_PORT + 1)) P_PROXY=$((BASE_PORT + 2)) P_AUTH=$((BASE_PORT + 3))
P_OFF=$((BASE_PORT + 4)) P_ON=$((BASE_PORT + 5)) P_OFF_ADMIN=$((BASE_PORT + 14)) P_ON_ADMIN=$((BASE_PORT + 15))

log() { echo "load.sh: $*" >&2; }

# --- tools -----------------------------------------------------------------
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v wrk >/dev/null || need_apt+=(wrk)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
nginx -V 2>&1 | grep -q http_auth_request_module || { log "nginx lacks auth_request"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v oha >/dev/null; then
  log "installing oha (cargo install oha --locked; a few minutes, once)"
  cargo install oha --locked --quiet
fi

# --- build -----------------------------------------------------------------
log "building (release)"
# The authz-off build keeps a target directory of its own, so switching the
# feature does not rebuild (and re-link with LTO) the other one each run.
cargo build --release --quiet --features bench-authz-off --bin loggate --target-dir target/bench-authz-off
WORK=$(mktemp -d /tmp/loggate-load.XXXXXX)
cp target/bench-authz-off/release/loggate "$WORK/loggate-authz-off"
cargo build --release --quiet --bin loggate --example sink --example bodies
LOGGATE=target/release/loggate SINK=target/release/examples/sink BODIES_BIN=target/release/examples/bodies

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "port $1 never opened"; exit 1
}

# --- servers -----------------------------------------------------------------
"$SINK" "127.0.0.1:$P_SINK" "$TOKEN" 2>"$WORK/sink.log" &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log $WORK/nginx/access.log combined buffer=64k;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  client_body_buffer_size 8m; client_max_body_size 8m;  # bodies stay in memory, as anyone would run it for this traffic
  keepalive_requests 1000000;
  upstream sink { server 127.0.0.1:$P_SINK; keepalive 128; keepalive_requests 1000000; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  server {                                   # (b) plain reverse proxy
    listen 127.0.0.1:$P_PROXY;
    location / { proxy_pass http://sink; }
  }
  server {                                   # (c) token checked by a subrequest first
    listen 127.0.0.1:$P_AUTH;
    location = /_auth {
      internal;
      proxy_pass http://sink/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Connection "";         # (a location's own proxy_set_header drops the inherited ones)
    }
    location / { auth_request /_auth; proxy_pass http://sink; }
  }
}
EOF
nginx -t -q -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX_PID=$!
PIDS+=($!)

start_loggate() { # binary port admin_port
  LOGGATE_SERVER__LISTEN="127.0.0.1:$2" LOGGATE_ADMIN__LISTEN="127.0.0.1:$3" \
  LOGGATE_UPSTREAM__API_URL="http://127.0.0.1:$P_SINK" LOGGATE_UPSTREAM__APP_URL="http://127.0.0.1:$P_SINK" \
    "$1" serve --config config/loggate.toml 2>"$WORK/loggate-$2.log" &
  PIDS+=($!)
}
start_loggate "$WORK/loggate-authz-off" "$P_OFF" "$P_OFF_ADMIN"
LG_OFF_PID=$!
start_loggate "$LOGGATE" "$P_ON" "$P_ON_ADMIN"
LG_ON_PID=$!
for p in "$P_SINK" "$P_PROXY" "$P_AUTH" "$P_OFF" "$P_ON"; do wait_port "$p"; done

NAMES=(sink proxy_pass auth_request authz-off loggate)
PORTS=("$P_SINK" "$P_PROXY" "$P_AUTH" "$P_OFF" "$P_ON")
LABELS=("(a) sink directly" "(b) nginx proxy_pass" "(c) nginx + auth_request" "(d) loggate, authz off" "(e) loggate, authz on")

# --- one body: the 200 checks, closed loop, open loop, report -----------------
run_body() { # SHAPE:ROWS
  local SHAPE=${1%%:*} ROWS=${1##*:}
  BODY="$WORK/body-$SHAPE-$ROWS.json" LUA="$WORK/post-$SHAPE-$ROWS.lua"
  "$BODIES_BIN" "$SHAPE" "$ROWS" "$PROJECT" >"$BODY"
  BODY_BYTES=$(wc -c <"$BODY")
  cat >"$LUA" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local f = io.open("$BODY", "rb"); wrk.body = f:read("*a"); f:close()
EOF
  # Every configuration must answer 200 with the data plane's {} before it counts.
  for i in "${!PORTS[@]}"; do
    out=$(curl -s -o /dev/stdout -w ' %{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/json' --data-binary "@$BODY" "http://127.0.0.1:${PORTS[$i]}/logs3")
    [[ "$out" == "{} 200" ]] || { log "${NAMES[$i]} answered '$out'"; exit 1; }
  done
  # And loggate must actually refuse a bad token (authorization on).
  code=$(curl -s -o /dev/null -w "%{http_code}" -X POST -H "Authorization: Bearer bt-st-wrong_0123456789abcdefghijklmnopqrst" -H "Content-Type: application/json" \
    --data-binary "@$BODY" "http://127.0.0.1:$P_ON/logs3")
  [[ "$code" == 401 ]] || { log "loggate accepted a wrong token ($code)"; exit 1; }

  # --- closed loop -------------------------------------------------------------
  # Interleaved rounds (every configuration once per round, in a rotating
  # order) and the median per configuration: other work on the machine then
  # hits all of them alike.
  # CPU per request counts the proxy's own processes (nginx master+workers, or
  # loggate), not the sink, nor the token check nginx delegates to it.
  proc_ticks() { # utime+stime of the given pids and their children, in clock ticks
    local total=0 p
    for p in "$@" $(pgrep -P "$(IFS=,; echo "$*")" 2>/dev/null); do
      [[ -r /proc/$p/stat ]] || continue
      total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
  }
  HZ=$(getconf CLK_TCK)
  CPU_PIDS=("" "$NGINX_PID" "$NGINX_PID" "$LG_OFF_PID" "$LG_ON_PID")
  declare -A RPS P50 P99 P999 ROUND_RPS TICKS REQS
  for i in "${!PORTS[@]}"; do
    wrk -t2 -c"$CONNS" -d"${WARMUP}s" -s "$LUA" "http://127.0.0.1:${PORTS[$i]}/logs3" >/dev/null
    TICKS[${NAMES[$i]}]=0 REQS[${NAMES[$i]}]=0
  done
  for round in $(seq "$ROUNDS"); do
    for k in "${!PORTS[@]}"; do
      i=$(( (k + round - 1) % ${#PORTS[@]} ))   # rotate the order: no configuration always runs last
      n=${NAMES[$i]} out="$WORK/wrk-$n-$round.txt"
      before=$([[ -n "${CPU_PIDS[$i]}" ]] && proc_ticks "${CPU_PIDS[$i]}" || echo 0)
      wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:${PORTS[$i]}/logs3" >"$out"
      after=$([[ -n "${CPU_PIDS[$i]}" ]] && proc_ticks "${CPU_PIDS[$i]}" || echo 0)
      if grep -qE 'Non-2xx|Socket errors' "$out"; then
        log "$n: errors during the run:"; cat "$out" >&2; exit 1
      fi
      rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
      ROUND_RPS[$n]+="$rps "
      TICKS[$n]=$((TICKS[$n] + after - before))
      REQS[$n]=$((REQS[$n] + $(awk '/requests in/ {print $1}' "$out")))
    done
    log "round $round: $(for n in "${NAMES[@]}"; do printf '%s %s  ' "$n" "$(echo "${ROUND_RPS[$n]}" | awk '{print $NF}')"; done)"
  done
  median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
  declare -A CPU_US
  for n in "${NAMES[@]}"; do
    RPS[$n]=$(echo "${ROUND_RPS[$n]}" | median)
    CPU_US[$n]=$(awk -v t="${TICKS[$n]}" -v hz="$HZ" -v r="${REQS[$n]}" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }')
  done
  CPU_US[sink]="-"

  # --- open loop at half of (c)'s maximum ------------------------------------------
  # Also interleaved: $LAT_ROUNDS rounds of $LAT_DURATION s per configuration
  # in a rotating order, and the median of each percentile per configuration:
  # single runs of the same configuration differ by several hundredths of a
  # millisecond at p50 on this shared machine.
  if [[ -n "${RATE_ENV}" ]]; then RATE=$RATE_ENV
  elif (( ROWS > 1 )); then RATE=2000
  else RATE=$(( ${RPS[auth_request]} / 2 )); fi
  declare -A ROUND_P50 ROUND_P99 ROUND_P999
  for round in $(seq "$LAT_ROUNDS"); do
    for k in "${!PORTS[@]}"; do
      i=$(( (k + round - 1) % ${#PORTS[@]} ))
      n=${NAMES[$i]} out="$WORK/oha-$n-$round.json"
      oha -z "${LAT_DURATION}s" -c "$CONNS" -q "$RATE" --latency-correction --no-tui --output-format json \
        -m POST -H "Authorization: Bearer $TOKEN" -T application/json -D "$BODY" \
        "http://127.0.0.1:${PORTS[$i]}/logs3" >"$out"
      read -r p50 p99 p999 ok achieved < <(python3 - "$out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
ok = all(k == "200" for k in codes)
print(f'{p["p50"]*1e3:.3f} {p["p99"]*1e3:.3f} {p["p99.9"]*1e3:.3f} {int(ok)} {d["summary"]["requestsPerSec"]:.0f}')
EOF
      )
      [[ "$ok" == 1 ]] || { log "$n: non-200 answers in the open-loop run"; exit 1; }
      ROUND_P50[$n]+="$p50 " ROUND_P99[$n]+="$p99 " ROUND_P999[$n]+="$p999 "
      log "open loop round $round: $n at $RATE req/s (achieved $achieved): p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms"
    done
  done
  fmedian() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  for n in "${NAMES[@]}"; do
    P50[$n]=$(echo "${ROUND_P50[$n]}" | fmedian)
    P99[$n]=$(echo "${ROUND_P99[$n]}" | fmedian)
    P999[$n]=$(echo "${ROUND_P999[$n]}" | fmedian)
  done

  # --- report ------------------------------------------------------------------
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  echo
  echo "### $SHAPE body, $ROWS row(s), $BODY_BYTES B"
  echo
  echo "Loopback, $(nproc) cores shared by load generator, servers and sink; $CONNS connections."
  echo "Closed loop: wrk, median of $ROUNDS interleaved ${DURATION}s rounds (rotating order). Latency: oha at $RATE req/s, latency-corrected, median of $LAT_ROUNDS interleaved ${LAT_DURATION}s rounds."
  echo "Proxy CPU: CPU time of the proxy's own processes per request (the sink, and the token check nginx delegates to it, excluded)."
  echo
  echo "| configuration | req/s (closed loop) | proxy CPU µs/req | p50 ms | p99 ms | p99.9 ms |"
  echo "|---|---:|---:|---:|---:|---:|"
  for i in "${!PORTS[@]}"; do
    n=${NAMES[$i]}
    echo "| ${LABELS[$i]} | ${RPS[$n]} | ${CPU_US[$n]} | ${P50[$n]} | ${P99[$n]} | ${P999[$n]} |"
  done
  echo
  echo "| ratio | value | target |"
  echo "|---|---:|---|"
  echo "| loggate / nginx+auth_request | $(ratio "${RPS[loggate]}" "${RPS[auth_request]}") | >= $( (( ROWS > 1 )) && echo 1.2 || echo 1.4 ) |"
  echo "| loggate / loggate authz-off | $(ratio "${RPS[loggate]}" "${RPS[authz-off]}") | >= 0.90 |"
  echo "| loggate / nginx proxy_pass | $(ratio "${RPS[loggate]}" "${RPS[proxy_pass]}") | stretch >= $( (( ROWS > 1 )) && echo 0.9 || echo 1.0 ) |"
  echo "| loggate p99 / nginx+auth_request p99 at $RATE req/s | $(ratio "${P99[loggate]}" "${P99[auth_request]}") | <= 1.0 |"
  echo "| nginx+auth_request / proxy_pass | $(ratio "${RPS[auth_request]}" "${RPS[proxy_pass]}") | |"
}

RATE_ENV=${RATE:-}
for b in $BODIES; do run_body "$b"; done
