#!/usr/bin/env bash
# Installs the official SAM2 package and the exporter's tools into .venv/sam2 (git-ignored), for
# `make verify-sam2` and for users exporting their own checkpoint (README "Bringing your own segmenter"):
#   torch==2.14.1 + torchvision==0.29.1 first and alone, then `sam2==1.1.0` from PyPI built without its
#   optional CUDA extension (SAM2_BUILD_CUDA=0, --no-build-isolation so it builds against that torch),
#   then scripts/sam2-export/requirements.txt (onnx, onnxruntime, scipy for the hole fill, …).
# About 3-5 minutes and 5.5 GB once; idempotent: a stamp holding the hash of this script and the
# requirements makes a second run a no-op.
#   bash scripts/setup-sam2.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEGFLOW_SAM2_VENV:-.venv/sam2}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
SAM2_PIN="sam2==1.1.0"
REQS=scripts/sam2-export/requirements.txt

want="$(cat scripts/setup-sam2.sh "$REQS" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "scripts/setup-sam2.sh: $VENV is up to date"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/pip" install --disable-pip-version-check -q)
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf '%s\n' "${TORCH_PINS[@]}" > "$constraints"
"${pip[@]}" "${TORCH_PINS[@]}"
"${pip[@]}" -r "$REQS" --constraint "$constraints"
# the sam2 wheel is built here; without the CUDA extension SAM2 warns once and skips its own hole
# fill, which verify_sam2.py supplies instead (scipy's 8-connected labelling)
SAM2_BUILD_CUDA=0 SAM2_BUILD_ALLOW_ERRORS=0 "${pip[@]}" --no-build-isolation "$SAM2_PIN" --constraint "$constraints"
"$VENV/bin/python" -c "import sam2, torch, onnx, onnxruntime; from sam2.build_sam import build_sam2_video_predictor; print('sam2', sam2.__file__, 'torch', torch.__version__)"
echo "$want" > "$stamp"
echo "scripts/setup-sam2.sh: $VENV ready in $(( $(date +%s) - start )) s"
