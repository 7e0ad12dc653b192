#!/usr/bin/env bash
# The official SAM2.1 hiera-tiny graphs (sam2==1.1.0 config, seeded random weights: verify_sam2.py
# checkpoint), exported once by export_sam2_onnx.py --image-decoder and cached in a git-ignored
# folder; later calls reuse them. Prints the folder on stdout (and nothing else).
#   bash scripts/sam2-export/cached-tiny.sh            -> .models/sam2.1-hiera-tiny-random
# The cache is keyed on the exporter, the checkpoint maker and the venv's stamp: a changed exporter
# exports again. Exit 3 (with a message on stderr) when .venv/sam2 is missing (`make deps-sam2`).
# Same commands as test/integration/real-sam2.test.ts, so the graphs are the ones it verifies.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SEGFLOW_SAM2_VENV:-$root/.venv/sam2}"
out="${SEGFLOW_SAM2_TINY_DIR:-$root/.models/sam2.1-hiera-tiny-random}"
here="$root/scripts/sam2-export"
cfg=configs/sam2.1/sam2.1_hiera_t.yaml
key="$(cat "$here/export_sam2_onnx.py" "$here/verify_sam2.py" "$here/requirements.txt" | sha256sum | cut -d' ' -f1)"
stamp="$out/.export.sha256"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
  echo "$out"
  exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "cached-tiny.sh: no official SAM2 venv at $venv; run \`make deps-sam2\` (scripts/setup-sam2.sh) to export SAM2.1 hiera-tiny" >&2
  exit 3
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/segflow-sam2-tiny-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
started=$(date +%s)
echo "cached-tiny.sh: exporting SAM2.1 hiera-tiny (random weights) into $out (once) ..." >&2
"$venv/bin/python" "$here/verify_sam2.py" checkpoint --model-cfg "$cfg" --out "$tmp/sam2.1_hiera_tiny_random.pt" >&2
"$venv/bin/python" "$here/export_sam2_onnx.py" --checkpoint "$tmp/sam2.1_hiera_tiny_random.pt" \
  --model-cfg "$cfg" --out "$tmp/models" --image-decoder >&2
mkdir -p "$(dirname "$out")"
rm -rf "$out" "$out.partial"
# copied beside the target, then renamed; the stamp last, so an interrupted run exports again
cp -r "$tmp/models" "$out.partial"
mv "$out.partial" "$out"
echo "$key" >"$stamp"
echo "cached-tiny.sh: exported in $(($(date +%s) - started)) s" >&2
echo "$out"
