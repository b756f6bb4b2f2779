#!/usr/bin/env bash
# Check the `full` profile (opt-in, sized for a GPU) on a machine with a GPU, cheapest stage first, so
# that a short GPU session still ends with the most useful answers. Logs and executed notebooks
# go to $1 (default artifacts/full-gpu). `make full-gpu` runs it with the course's venv.
#
#   unit       the unit tests at the fast profile — on a CUDA machine they train and measure on the
#              GPU, and the CUDA-only tests (bf16 autocast, measurements moved to the GPU) run
#   check      tools/check_full_profile.py: every experiment with the full grids at toy sizes, on CUDA
#   bench      training throughput at the full sizes (width 256 x depth 3, batch 512)
#   notebooks  every notebook at MBC_PROFILE=full, one at a time (processes sharing one GPU slow each
#              other down many times over), each stopped after $NB_DEADLINE s; executed copies kept
#
# STAGES="unit check" picks stages; NOTEBOOKS="notebooks/05_*.ipynb ..." picks notebooks.
set -u
cd "$(dirname "$0")/.."
out=${1:-artifacts/full-gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
export MBC_PROGRESS=0 PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/summary.txt"; }
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || log "warning: no CUDA here; the stages run on the CPU"
for stage in ${STAGES:-unit check bench notebooks}; do
  log "stage $stage"
  case $stage in
    unit)
      MBC_PROFILE=fast "$py" -m pytest -q -p no:cacheprovider tests --ignore=tests/test_browser.py \
        --ignore=tests/test_book.py --ignore=tests/test_exercises.py > "$out/unit.log" 2>&1
      log "unit rc=$? $(tail -n 1 "$out/unit.log")" ;;
    check)
      "$py" tools/check_full_profile.py > "$out/check_full.log" 2>&1
      log "check rc=$?"; grep -E "^(ok|FAIL)" "$out/check_full.log" | tee -a "$out/summary.txt" ;;
    bench)
      "$py" benchmarks/train_throughput.py --width 256 --depth 3 --batch-size 512 --steps 100 --repeats 2 \
        > "$out/train_throughput.log" 2>&1
      log "bench rc=$?" ;;
    notebooks)
      "$py" benchmarks/notebook_times.py --profile full --save "$out/executed" --deadline "${NB_DEADLINE:-1800}" \
        --skip-book ${NOTEBOOKS:+--notebooks $NOTEBOOKS} > "$out/notebooks.log" 2>&1
      log "notebooks rc=$?"; grep -E "^notebooks/|^all" "$out/notebooks.log" | tee -a "$out/summary.txt" ;;
    *) log "unknown stage $stage (unit, check, bench, notebooks)"; exit 2 ;;
  esac
done
