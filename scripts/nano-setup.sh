#!/usr/bin/env bash
# Builds the nano world from scratch, deterministically by seed, into .nano/ (git-ignored):
#   .venv/nano                 Python env: torch==2.13.0 (the machine's CPU wheel) first and alone,
#                              then nano/requirements.txt pinned
#   .nano/data                 the generated OK-VOS-layout dataset + corpus.jsonl (nano/world.py)
#   .nano/models/sam2          the tiny segmenter in the sam2-onnx v1 contract (nano/segmenter.py)
#   .nano/models/policy/v0     the nano policy after its SFT warm-up (nano/policy_sft.py): the best of
#                              NANO_SFT_CANDIDATES (4; scripts/nano-demo.sh: 2) seeds on held-out
#                              validation (nano/policy_select.py); each candidate stays in
#                              v0.candidates/, reused while its code, data, steps and kernels are unchanged
# Idempotent: each step keeps a stamp (hash of its inputs); a second run is a no-op.
#   bash scripts/nano-setup.sh            # everything
#   bash scripts/nano-setup.sh --data     # the venv and the data only (what the unit tests need)
#   NANO_SEED=1 bash scripts/nano-setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${NANO_VENV:-.venv/nano}"
DIR="${NANO_DIR:-.nano}"
SEED="${NANO_SEED:-0}"
SEG_STEPS="${NANO_SEG_STEPS:-200}"
SFT_STEPS="${NANO_SFT_STEPS:-2000}"
SFT_CANDIDATES="${NANO_SFT_CANDIDATES:-4}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_PIN="torch==2.13.0"
start=$(date +%s)

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

want="$(hash_of nano/requirements.txt)-$TORCH_PIN"
if ! fresh "$VENV/.installed" "$want" || [[ ! -x "$VENV/bin/python" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  pip=("$VENV/bin/pip" install --disable-pip-version-check -q)
  "${pip[@]}" "$TORCH_PIN"
  "${pip[@]}" -r nano/requirements.txt --constraint <(echo "$TORCH_PIN")
  echo "$want" > "$VENV/.installed"
  echo "nano-setup: venv installed ($(( $(date +%s) - start ))s)"
fi
PY="$VENV/bin/python"

want="$(hash_of nano/world.py)-seed$SEED"
if ! fresh "$DIR/data/.stamp" "$want"; then
  rm -rf "$DIR/data"
  "$PY" -m nano.world --out "$DIR/data" --seed "$SEED"
  echo "$want" > "$DIR/data/.stamp"
  echo "nano-setup: data generated ($(( $(date +%s) - start ))s)"
fi

if [[ "${1:-}" == "--data" ]]; then
  echo "nano-setup: venv and data up to date in $DIR ($(( $(date +%s) - start ))s)"
  exit 0
fi

want="$(hash_of nano/segmenter.py "$DIR/data/.stamp")-seed$SEED-steps$SEG_STEPS"
if ! fresh "$DIR/models/sam2/.stamp" "$want"; then
  rm -rf "$DIR/models/sam2"
  "$PY" -W ignore -m nano.segmenter --data "$DIR/data" --out "$DIR/models/sam2" --seed "$SEED" --steps "$SEG_STEPS"
  echo "$want" > "$DIR/models/sam2/.stamp"
  echo "nano-setup: segmenter trained and exported ($(( $(date +%s) - start ))s)"
fi
want="$(hash_of nano/policy_model.py nano/policy_sft.py nano/policy_select.py "$DIR/data/.stamp")-seed$SEED-steps$SFT_STEPS-candidates$SFT_CANDIDATES"
if ! fresh "$DIR/models/policy/v0/.stamp" "$want"; then
  rm -rf "$DIR/models/policy/v0"
  "$PY" -W ignore -m nano.policy_sft --data "$DIR/data" --out "$DIR/models/policy/v0" --seed "$SEED" --steps "$SFT_STEPS" \
    --candidates "$SFT_CANDIDATES"
  echo "$want" > "$DIR/models/policy/v0/.stamp"
  echo "nano-setup: policy SFT warm-up done ($(( $(date +%s) - start ))s)"
fi
echo "nano-setup: up to date in $DIR ($(( $(date +%s) - start ))s)"
