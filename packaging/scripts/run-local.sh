#!/usr/bin/env bash
# `make run`: a manager on ./data with an embedded SQLite, plus one local
# agent enrolled with a join token, both in the foreground until Ctrl-C.
set -euo pipefail
BIN=${BIN:-$(pwd)/bin}
DATA=${ADMQ_DATA_DIR:-$(pwd)/data}
HTTP=${ADMQ_HTTP_ADDR:-127.0.0.1:12305}
TUNNEL=${ADMQ_TUNNEL_ADDR:-127.0.0.1:12306}
URL="http://$HTTP/admq-manager"
mkdir -p "$DATA" && chmod 700 "$DATA"

# The manager prints a generated admin password once, when it creates the
# database. For this local setup we choose it and keep it beside the data.
pwfile="$DATA/run-admin-password"
if [ ! -f "$DATA/admq.db" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile")
fi
if [ ! -f "$pwfile" ]; then
  echo "run: $DATA holds a database made without 'make run'; log in with the admin password it printed, or remove $DATA to start over" >&2
  exit 1
fi
password=$(cat "$pwfile")

pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# SSH bootstrap uploads agents from here; a local build has this machine's only.
mkdir -p "$DATA/agents"
cp "$BIN/admq-agent" "$DATA/agents/admq-agent-linux-$(go env GOARCH)"
ADMQ_ADMIN_PASSWORD="$password" "$BIN/admq-manager" --data-dir "$DATA" --http-addr "$HTTP" --tunnel-addr "$TUNNEL" --agent-dir "$DATA/agents" \
  >>"$DATA/manager.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "run: the manager exited; see $DATA/manager.log" >&2; tail -5 "$DATA/manager.log" >&2; exit 1; }
  sleep 0.1
done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
jwt=$(curl -fsS -X POST "$URL/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" | json '["data"]["token"]')

token_args=()
if [ ! -f "$DATA/agent/agent.id" ]; then
  join=$(curl -fsS -X POST "$URL/agent/token" -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
    -d '{"description":"make run local agent","maxUses":1,"ttlSeconds":600}' | json '["data"]["token"]')
  token_args=(--token "$join")
fi
"$BIN/admq-agent" run --manager "$TUNNEL" --state-dir "$DATA/agent" "${token_args[@]}" >>"$DATA/agent.log" 2>&1 &
pids+=($!)

online=""
for _ in $(seq 100); do
  online=$(curl -fsS "$URL/server?agentStatus=online" -H "Authorization: Bearer $jwt" | json '["data"]["total"]')
  [ "$online" -ge 1 ] && break
  sleep 0.1
done

cat <<MSG

  admq-manager is running (logs: $DATA/manager.log, $DATA/agent.log)

  web console  http://$HTTP/      (log in as admin)
  console API  $URL      (OpenAPI: $URL/openapi.json, metrics: http://$HTTP/metrics)
  agent tunnel $TUNNEL
  admin        username admin, password $password
  online servers: $online

  Try:
    TOKEN=\$(curl -s -X POST $URL/login -H 'Content-Type: application/json' \\
      -d '{"username":"admin","password":"$password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
    curl -s "$URL/server?pageNum=1&pageSize=10" -H "Authorization: Bearer \$TOKEN"

  Ctrl-C stops both.
MSG
wait -n "${pids[@]}"
