#!/usr/bin/env bash
# The GPU dependency set of cluster/Dockerfile, resolved for the Python and platform of Ray's LLM image.
#
#   bash requirements/compile-gpu-lock.sh           rewrite requirements/lock-gpu.txt (after changing pyproject.toml)
#   bash requirements/compile-gpu-lock.sh --check   resolve without installing: exit 1, naming the packages, unless
#                                                   the lock is exactly the resolution of pyproject.toml under its pins
#
# Inputs: pyproject.toml's dependencies with the vllm and lora extras, constrained by requirements/lock-cpu.txt minus
# the packages listed in requirements/gpu-differs.txt (so shared packages keep the versions CI tests). uv resolves for
# another Python and platform than this machine's and reads only wheel metadata (no multi-GB CUDA downloads).
# Needs the package index; installs uv into a temporary folder with $PYTHON's pip (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
PYTHON_VERSION=3.12              # the Python of rayproject/ray-llm:<ray>-py312-cu130 (cluster/Dockerfile)
PLATFORM=x86_64-manylinux_2_28   # the image is x86_64 Linux with glibc >= 2.28
LOCK=requirements/lock-gpu.txt

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3}" -m pip install --quiet --disable-pip-version-check --target "$tmp/uv" "uv==$UV_VERSION"
# The system certificate store: it holds the CA of any TLS-inspecting proxy in front of the index.
export UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1 UV_SYSTEM_CERTS=1 UV_CACHE_DIR="${UV_CACHE_DIR:-$tmp/cache}"
compile() {
    "$tmp/uv/bin/uv" pip compile pyproject.toml --extra vllm --extra lora --quiet \
        --python-version "$PYTHON_VERSION" --python-platform "$PLATFORM" "$@"
}
pins() {  # "name==version" per line, names normalized (PEP 503), sorted
    grep -oE '^[A-Za-z0-9][A-Za-z0-9._-]*==[^ ;\\]+' "$1" \
        | awk -F'==' '{name = tolower($1); gsub(/[._-]+/, "-", name); print name "==" $2}' | sort
}

if [[ "${1:-}" == "--check" ]]; then
    compile --constraint "$LOCK" --no-header --no-annotate --output-file "$tmp/resolved.txt"
    if ! diff <(pins "$LOCK") <(pins "$tmp/resolved.txt") > "$tmp/diff"; then
        echo "$LOCK is not the resolution of pyproject.toml (< only in the lock, > needed but missing or other version):"
        grep '^[<>]' "$tmp/diff"
        echo "refresh it: bash requirements/compile-gpu-lock.sh"
        exit 1
    fi
    echo "$LOCK: $(pins "$LOCK" | wc -l) pins, a complete and consistent resolution for Python $PYTHON_VERSION on $PLATFORM"
    exit 0
fi

differs=$(grep -oE '^[A-Za-z0-9._-]+' requirements/gpu-differs.txt | paste -sd'|')
grep -viE "^($differs)==" requirements/lock-cpu.txt > "$tmp/lock-cpu-shared.txt"
compile --constraint "$tmp/lock-cpu-shared.txt" --custom-compile-command "bash requirements/compile-gpu-lock.sh" \
    --output-file "$LOCK"
# The annotations name the temporary constraints file; name the file it was made from instead.
sed -i "s|$tmp/lock-cpu-shared.txt|requirements/lock-cpu.txt|" "$LOCK"
echo "wrote $LOCK: $(pins "$LOCK" | wc -l) pins"
