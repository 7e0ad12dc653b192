#!/usr/bin/env bash
# `make test-portability`: the numerics-sensitive tests once more under kernel settings other
# machines of this kind run (an AMD EPYC has no AVX-512; thread counts differ), so a tolerance or a
# result that holds only on this CPU fails here, not on the next person's machine:
#   the nano pytest suite (nano/tests), the trainer pytest suite (trainer/tests, with the nano
#   policy family's nano/tests/test_trainer_family.py, which needs the trainer venv), and the J&F /
#   metric / ground-truth goldens (dist/test/unit: core/metrics, core/groundtruth,
#   core/protocol-golden, cli/eval-masks)
# under each of these settings (torch's ATen kernels, MKL's BLAS and oneDNN capped together, as on
# a CPU that has only those instructions; OpenMP threads 1 and 2): native:1 avx2:1 avx2:2
# default:1 default:2 (native at 2 threads is how the rest of make test runs them), where
#   native   the machine's own kernels
#   avx2     ATEN_CPU_CAPABILITY=avx2    MKL_ENABLE_INSTRUCTIONS=AVX2   ONEDNN_MAX_CPU_ISA=AVX2
#   default  ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41
# Needs the venvs and the build (make install build); starts the dev stack if it is not up.
# PORTABILITY_SETTINGS="avx2:1 default:2" runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
NANO_PY="${NANO_VENV:-.venv/nano}/bin/python"
TRAINER_PY=".venv/trainer/bin/python"
GOLDENS=(dist/test/unit/core/metrics.test.js dist/test/unit/core/groundtruth.test.js
         dist/test/unit/core/protocol-golden.test.js dist/test/unit/cli/eval-masks.test.js)
for f in "$NANO_PY" "$TRAINER_PY" "${GOLDENS[@]}"; do
  [[ -e "$f" ]] || { echo "test-portability: $f is missing; run make install build first" >&2; exit 2; }
done
SETTINGS="${PORTABILITY_SETTINGS:-native:1 avx2:1 avx2:2 default:1 default:2}"
# the trainer's tests read and write the dev stack's S3: a running stack is reused, otherwise it is
# started here and stopped at the end (as scripts/run-tests.js does for the test layers)
if ! node bin/segr.js dev status --quiet >/dev/null 2>&1; then
  node bin/segr.js dev up || { echo "test-portability: could not start the dev stack (segr dev up)" >&2; exit 2; }
  trap 'node bin/segr.js dev down >/dev/null 2>&1 || true' EXIT
fi
kernels() {
  case "$1" in
    native) echo "" ;;
    avx2) echo "ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2" ;;
    default) echo "ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41" ;;
    *) echo "test-portability: unknown kernel setting '$1' (native, avx2, default)" >&2; return 1 ;;
  esac
}
failed=()
ran=0
NODE_LOG="$(mktemp)"
start=$(date +%s)
for s in $SETTINGS; do
  kind="${s%%:*}"; threads="${s##*:}"
  vars="$(kernels "$kind")" || exit 2
  # every setting starts from the machine's own kernels (a cap set in the caller's environment is
  # dropped), then caps what the setting names
  vars="-u ATEN_CPU_CAPABILITY -u MKL_ENABLE_INSTRUCTIONS -u ONEDNN_MAX_CPU_ISA $vars OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads"
  cap="$(env $vars "$NANO_PY" -c 'import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())')"
  echo "=== test-portability: $kind kernels, $threads thread(s): $vars (torch reports capability, threads: $cap)"
  t0=$(date +%s)
  ok=1
  env $vars PYTHONPATH=. "$NANO_PY" -W ignore -m pytest -q -p no:cacheprovider nano/tests 2>&1 | tail -n 3
  [[ ${PIPESTATUS[0]} -eq 0 ]] || ok=0
  # the nano policy family (a trainer plugin) runs in the trainer venv, beside the trainer's suite;
  # the tracker tests (an MLflow server, TensorBoard files: no numerics) run once, in the activity layer
  env $vars PYTHONPATH=.:trainer SEGFLOW_TRAINER_FAMILIES=nano.trainer_family \
    "$TRAINER_PY" -m pytest -q -p no:cacheprovider trainer/tests nano/tests/test_trainer_family.py \
    --ignore=trainer/tests/test_tracker.py 2>&1 | tail -n 3
  [[ ${PIPESTATUS[0]} -eq 0 ]] || ok=0
  env $vars node --test "${GOLDENS[@]}" > "$NODE_LOG" 2>&1 || { ok=0; tail -n 40 "$NODE_LOG"; }
  echo "    goldens: $(grep -E '^(# |ℹ )(pass|fail) ' "$NODE_LOG" | sed -E 's/^(# |ℹ )//' | paste -sd, -)"
  ran=$((ran + 1))
  if [[ $ok -eq 1 ]]; then echo "--- $kind:$threads green ($(( $(date +%s) - t0 ))s)"; else echo "--- $kind:$threads RED"; failed+=("$kind:$threads"); fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test-portability: red under ${failed[*]} (of $ran settings)" >&2
  exit 1
fi
echo "test-portability: green under all $ran settings ($SETTINGS) in $(( $(date +%s) - start ))s"
