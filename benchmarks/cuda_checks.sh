#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run: the tests that skip without one, and the CUDA
# benchmark records (the zoo's VAE, JMVAE-kl and MoPoE steps against the plain PyTorch models, and
# the JMVAE-kl steps/s at batch 100 and 1000, each record with the GPU's name).
#
#   bash benchmarks/cuda_checks.sh OUT_DIR [WHEEL_DIR]
#
# The project runs from this checkout (no install). WHEEL_DIR holds wheels of the pure-Python
# packages the machine lacks (pixyz and what it imports, e.g. IPython): they are unpacked into a
# temporary folder put on PYTHONPATH. OUT_DIR receives summary.txt, tests.log and one JSON record
# per benchmark. Exit status: 0 when every check ran and passed, 1 when one failed, 2 without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash benchmarks/cuda_checks.sh OUT_DIR [WHEEL_DIR]}
python=${PYTHON:-python3}
mkdir -p "$out"
if [ -n "${2:-}" ]; then
    site=$(mktemp -d)
    for wheel in "$2"/*.whl; do
        "$python" -m zipfile -e "$wheel" "$site" || exit 1
    done
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device is visible to PyTorch: nothing to check here" | tee "$out/summary.txt"
    exit 2
fi
"$python" -c 'import torch; print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)' \
    | tee "$out/summary.txt"

status=0
# the test files that hold CUDA tests, named so that a module importing a package the machine lacks
# (the notebooks' runner) is not collected
echo "== CUDA tests" | tee -a "$out/summary.txt"
"$python" -m pytest -q -p no:cacheprovider -k cuda \
    tests/test_hot_path.py tests/test_precision.py tests/test_device_data.py tests/test_training.py \
    tests/test_refinement.py tests/test_jmvae.py tests/test_jmvae_gan.py \
    tests/test_conditional_models.py tests/test_distilled_model.py tests/test_model_state.py \
    >"$out/tests.log" 2>&1 || status=1
tail -n 3 "$out/tests.log" | tee -a "$out/summary.txt"

record() {  # record NAME SCRIPT [ARGS...]: one benchmark on CUDA, its JSON as OUT_DIR/NAME.json
    local name=$1
    shift
    echo "== $name" | tee -a "$out/summary.txt"
    "$python" "benchmarks/$1" "${@:2}" --device cuda --out "$out/$name.json" >"$out/$name.log" 2>&1 || status=1
    tail -n 4 "$out/$name.log" | tee -a "$out/summary.txt"
    rm -f "$out/$name.log"
}
record vae_throughput_cuda vae_throughput.py --steps 500 --rounds 5
record jmvae_kl_throughput_cuda jmvae_kl_throughput.py --steps 200 --rounds 5
record jmvae_kl_throughput_cuda_batch1000 jmvae_kl_throughput.py --steps 100 --rounds 5 --batch-size 1000
record multimodal_throughput_cuda multimodal_throughput.py --steps 50 --rounds 5
exit $status
