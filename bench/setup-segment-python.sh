#!/usr/bin/env bash
# Installs the pinned Python packages of bench/segment.bench.ts (onnxruntime, numpy, pillow) into the
# git-ignored .venv/segment-bench. Idempotent: does nothing when the pinned set is already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SEGFLOW_SEGMENT_BENCH_VENV:-$root/.venv/segment-bench}"
req="$root/bench/requirements-segment.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c "import onnxruntime, numpy, PIL; print('onnxruntime', onnxruntime.__version__)"
echo "$want" >"$stamp"
echo "segment bench python installed into $venv"
