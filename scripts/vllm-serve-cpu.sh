#!/usr/bin/env bash
# Serves a Hugging Face policy folder with the real vLLM of .venv/vllm (scripts/setup-vllm.sh) on
# this CPU test setup, as segflow's policy server: runtime LoRA loading on (weight sync), fp32 (so the
# trainer's fp32 log-probs agree with the server's), up to 8 images a request, and the PIL image
# processor (the trainer preprocesses images with PIL where no torchvision for its torch exists; the
# two backends resize differently enough to move log-probs by 1e-4), and the dev-mode RPC that
# full-weight versions reload through (VLLM_SERVER_DEV_MODE=1: `/collective_rpc`, unauthenticated;
# loopback only here). GPU users run plain `vllm serve` (README "Bringing your own policy").
#   bash scripts/vllm-serve-cpu.sh MODEL_DIR PORT [SERVED_NAME] [MAX_MODEL_LEN]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: vllm-serve-cpu.sh MODEL_DIR PORT [SERVED_NAME] [MAX_MODEL_LEN]}"
port="${2:?usage: vllm-serve-cpu.sh MODEL_DIR PORT [SERVED_NAME] [MAX_MODEL_LEN]}"
name="${3:-policy}"
max_len="${4:-4096}"
VENV="${SEGFLOW_VLLM_VENV:-.venv/vllm}"
[[ -x "$VENV/bin/vllm" ]] || { echo "vllm-serve-cpu.sh: $VENV has no vllm: run 'bash scripts/setup-vllm.sh'" >&2; exit 1; }
export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True VLLM_SERVER_DEV_MODE=1 VLLM_HOST_IP=127.0.0.1 HF_HUB_OFFLINE=1
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
exec "$VENV/bin/vllm" serve "$model" --host 127.0.0.1 --port "$port" --served-model-name "$name" \
  --max-model-len "$max_len" --dtype float32 --enable-lora --max-lora-rank 8 --max-loras 2 \
  --limit-mm-per-prompt '{"image":8,"video":0}' --mm-processor-kwargs '{"use_fast": false}' \
  --seed 0 --disable-log-stats
