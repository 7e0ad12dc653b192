#!/usr/bin/env bash
# Installs the pinned Python packages into .models/venv and exports all-MiniLM-L6-v2 to ONNX under
# .models/all-MiniLM-L6-v2 (both git-ignored). Idempotent: a stamp holding the hash of this script,
# the exporter and the requirements makes a second run a no-op (well under a second).
#   bash scripts/setup-models.sh            # install + export if needed
#   bash scripts/setup-models.sh --golden   # also rewrite test/fixtures/embeddings/minilm-golden.json
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS_DIR="${SEGFLOW_MODELS_DIR:-.models}"
VENV="$MODELS_DIR/venv"
OUT="$MODELS_DIR/all-MiniLM-L6-v2"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"

stamp_of() {
  cat scripts/setup-models.sh scripts/export-minilm-onnx.py scripts/requirements-models.txt | sha256sum | cut -d' ' -f1
}
want="$(stamp_of)"
golden=0
[[ "${1:-}" == "--golden" ]] && golden=1

if [[ $golden == 0 && -f "$OUT/model.onnx" && -f "$OUT/.stamp" && "$(cat "$OUT/.stamp")" == "$want" ]]; then
  echo "setup-models: $OUT is up to date"
  exit 0
fi

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
venv_stamp="$VENV/.installed"
venv_want="$(cat scripts/requirements-models.txt | sha256sum | cut -d' ' -f1)-$TORCH_PIN"
if [[ ! -f "$venv_stamp" || "$(cat "$venv_stamp")" != "$venv_want" ]]; then
  # torch first and alone, pinned, so the CPU wheel is chosen before anything can pull another build.
  "$VENV/bin/pip" install --disable-pip-version-check -q "$TORCH_PIN"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r scripts/requirements-models.txt
  echo "$venv_want" > "$venv_stamp"
fi

args=(--out "$OUT")
[[ $golden == 1 ]] && args+=(--golden test/fixtures/embeddings/minilm-golden.json)
"$VENV/bin/python" scripts/export-minilm-onnx.py "${args[@]}"
echo "$want" > "$OUT/.stamp"
echo "setup-models: done in $(( $(date +%s) - start ))s"
