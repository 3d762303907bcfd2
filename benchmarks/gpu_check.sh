#!/usr/bin/env bash
# GPU check, for the rare runs on a CUDA machine: the gpu preset's training throughput, a short training run, encode
# and search on the GPU, in under 8 minutes, ending with ONE JSON summary line on stdout (details: JSON file).
#
#   benchmarks/gpu_check.sh              # on a CUDA machine
#   benchmarks/gpu_check.sh --tiny       # toy sizes: a dry run (also what happens when CUDA is absent)
#
# Uses .venv, creating it with `make setup` (pip only) when it is missing or broken; setup time is not counted.
# Other options go to benchmarks/gpu_check.py (--data-root, --budget-s, --out; see --help).
# GPU_CHECK_LIMIT_S (default 460) is a hard limit on the check. Never run by the tests or CI.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {  # the one JSON line, when gpu_check.py could not give it
    printf '{"check": "gpu_check", "ok": false, "error": "%s"}\n' "$1"
    exit 1
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exec .venv/bin/python benchmarks/gpu_check.py --help
fi

if ! .venv/bin/python -c "import embedkit, torch, faiss" 2>/dev/null; then
    echo "gpu_check: setting up .venv (make setup) ..." >&2
    started=$SECONDS
    if command -v make >/dev/null; then
        make setup >&2 || fail "make setup failed: see the pip messages above"
    else
        { "${PYTHON:-python3}" -m venv .venv && .venv/bin/pip install --quiet -e '.[test]'; } >&2 \
            || fail "creating .venv failed: see the pip messages above"
    fi
    echo "gpu_check: setup took $((SECONDS - started)) s (not part of the check)" >&2
fi

# as the Makefile does: the project's data folder beside the checkout, unless EMBEDKIT_DATA says otherwise
if [[ -z "${EMBEDKIT_DATA:-}" && -d ../shared/data ]]; then
    export EMBEDKIT_DATA="$(cd ../shared/data && pwd)"
fi

limit_s="${GPU_CHECK_LIMIT_S:-460}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
set +e
timeout --kill-after=15 "$limit_s" .venv/bin/python benchmarks/gpu_check.py "$@" >"$out"
rc=$?
set -e
last="$(tail -n 1 "$out")"
if [[ "$last" == \{* ]]; then
    echo "$last"
    exit "$rc"
fi
[[ $rc -eq 124 || $rc -eq 137 ]] && fail "timed out after ${limit_s} s"
fail "gpu_check.py exited with code $rc and no summary: see the messages above"
