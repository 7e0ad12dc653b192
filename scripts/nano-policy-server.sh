#!/usr/bin/env bash
# Starts the nano policy server (nano/policy_server.py, OpenAI-compatible, vLLM flavour) in the
# background on the SFT checkpoint made by scripts/nano-setup.sh, waits for /health, prints its URL
# and writes it to .nano/policy-server.url (pid in .nano/policy-server.pid, log .nano/policy-server.log).
#   bash scripts/nano-policy-server.sh [--port P] [--model DIR]    # default: any free port, .nano/models/policy/v0
#   bash scripts/nano-policy-server.sh --stop
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${NANO_DIR:-.nano}"
PY="${NANO_VENV:-.venv/nano}/bin/python"
PORT=0
MODEL="$DIR/models/policy/v0"
PIDF="$DIR/policy-server.pid"
URLF="$DIR/policy-server.url"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --stop)
      if [[ -f "$PIDF" ]] && kill "$(cat "$PIDF")" 2>/dev/null; then echo "nano-policy-server: stopped pid $(cat "$PIDF")"; fi
      rm -f "$PIDF" "$URLF"; exit 0 ;;
    *) echo "usage: $0 [--port P] [--model DIR] | --stop" >&2; exit 2 ;;
  esac
done
[[ -f "$MODEL/model.safetensors" ]] || { echo "nano-policy-server: no checkpoint in $MODEL; run bash scripts/nano-setup.sh first" >&2; exit 1; }
if [[ -f "$PIDF" ]] && kill -0 "$(cat "$PIDF")" 2>/dev/null && [[ -f "$URLF" ]]; then
  echo "nano-policy-server: already running (pid $(cat "$PIDF")) at $(cat "$URLF")"; exit 0
fi
rm -f "$URLF"
start=$(date +%s)
# processed log-probs (of the sampling temperature): what pipelined training's importance ratio needs
PYTHONPATH=. nohup "$PY" -W ignore -m nano.policy_server --model "$MODEL" --port "$PORT" --url-file "$URLF" \
  --logprobs-mode processed_logprobs > "$DIR/policy-server.log" 2>&1 &
echo $! > "$PIDF"
for _ in $(seq 1 120); do
  if [[ -f "$URLF" ]] && curl -fsS "$(sed 's#/v1$##' "$URLF")/health" >/dev/null 2>&1; then
    echo "nano-policy-server: $(cat "$URLF") (pid $(cat "$PIDF"), ready in $(( $(date +%s) - start ))s)"
    exit 0
  fi
  kill -0 "$(cat "$PIDF")" 2>/dev/null || { cat "$DIR/policy-server.log" >&2; exit 1; }
  sleep 0.5
done
echo "nano-policy-server: not ready after 60s; see $DIR/policy-server.log" >&2
exit 1
