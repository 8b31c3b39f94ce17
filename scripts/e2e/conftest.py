"""Starts real cocoon processes on loopback for the end-to-end suite.

Each `Network` runs the fake OpenAI upstream, a proxy in local mode, a worker that forwards to
the upstream, and a client; every port is chosen free at start, every process is stopped at the
end. The proxy keeps its books in an SQLite file in the test's temporary directory (or at
`ledger_url`), so a proxy restarted with `start_proxy()` finds them again. Binaries come from
$COCOON_BIN_DIR (default: target/debug of this checkout).
"""

import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("COCOON_BIN_DIR", ROOT / "target" / "debug"))
MODEL = "Qwen/Qwen3-8B"
# The fake upstream has no weights; the worker is pointed at this file as its upstream's model
# files (`--model-files`), so it is named by a weights hash like any production worker.
MODEL_WEIGHTS = b"the weights the fake upstream stands for\n"
MODEL_HASH = hashlib.sha256(MODEL_WEIGHTS).hexdigest()


def _simulated_image_hash() -> str:
    """The image hash of simulated evidence, computed from attestation.md's definition (SHA-256
    over MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG, RTMR0-3 and 64 zero bytes) and the simulated
    registers (SHA-384 of "cocoon-rs SIMULATED <register>", the others zero)."""
    reg = lambda name: hashlib.sha384(f"cocoon-rs SIMULATED {name}".encode()).digest()
    data = reg("mrtd") + bytes(48) * 3 + b"".join(reg(f"rtmr{i}") for i in range(4)) + bytes(64)
    return hashlib.sha256(data).hexdigest()


SIMULATED_IMAGE_HASH = _simulated_image_hash()


def _ephemeral_range():
    try:
        low, high = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_handed_out = set()


def free_port() -> int:
    """A free loopback port for a process to listen on later. Taken below the kernel's
    ephemeral range, so that no outgoing connection made in between (by any process) can take it
    as its local port, and never the same one twice in this run."""
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10000, max(10001, low))
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def http_get(url: str, timeout: float = 2.0, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return r.status, r.read()


def wait_for(what, check, timeout=30.0, logs=lambda: ""):
    """Polls `check` until it answers something true (answered), or fails after `timeout` s
    with `what`, the last answer and `logs()`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs()}")


class Network:
    def __init__(self, tmp: Path, upstream_args=(), worker_args=(), proxy_args=(), ledger_url=None,
                 client_args=(), client_owner="e2e-client", client_api_key=None, builtin_model=None,
                 upstream_url=None, speech_model=None):
        self.tmp = tmp
        # A running OpenAI-compatible server: the worker forwards to it instead of the fake one.
        self.upstream_url = upstream_url
        # A GGUF path: the worker runs the built-in engine on it instead of the fake upstream.
        self.builtin_model = builtin_model
        # A Whisper model directory: the worker's built-in engine transcribes with it.
        self.speech_model = speech_model
        self.upstream_args = list(upstream_args)
        self.worker_args = list(worker_args)
        self.proxy_args = list(proxy_args)
        self.client_args = list(client_args)
        self.client_owner = client_owner
        # With a key, the client's API requires `Authorization: Bearer <key>` (read from a file).
        self.client_api_key = client_api_key
        self.auth = {"Authorization": f"Bearer {client_api_key}"} if client_api_key else {}
        # False: the worker and the client find the proxy in the root registry instead.
        self.name_proxy = True
        self.procs = {}
        self.ports = {
            "proxy_workers": free_port(),
            "proxy_clients": free_port(),
            "proxy_stats": free_port(),
            "worker_stats": free_port(),
            "client": free_port(),
        }
        # One ledger per network, never the user's own data directory.
        self.ledger_url = ledger_url or str(tmp / f"ledger-{self.ports['proxy_clients']}.sqlite")

    def _spawn(self, name, args):
        # Appended, so that a restarted process's log follows its predecessor's.
        log = open(self.tmp / f"{name}.log", "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env)
        self.procs[name] = proc
        return proc

    def log(self, name) -> str:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return f"({name} was not started)"
        return path.read_text(errors="replace")

    def start(self):
        if self.upstream_url is None:
            self.start_fake_upstream()
        p = self.ports
        self.start_proxy()
        self.start_worker()
        key_args = []
        if self.client_api_key:
            key_file = self.tmp / f"api-key-{p['client']}"
            key_file.write_text(self.client_api_key + "\n")
            key_file.chmod(0o600)
            key_args = ["--http-api-key-file", str(key_file)]
        self._spawn(
            "client",
            [
                str(BIN_DIR / "cocoon-client"), "--local",
                "--listen", f"127.0.0.1:{p['client']}",
                "--owner", self.client_owner,
            ]
            + (["--proxy", f"127.0.0.1:{p['proxy_clients']}"] if self.name_proxy else [])
            + key_args
            + self.client_args,
        )
        self.base_url = f"http://127.0.0.1:{p['client']}/v1"
        self.wait_http(f"http://127.0.0.1:{p['client']}/health", "client")
        self.wait_for_model()
        return self

    def start_fake_upstream(self):
        up = self._spawn(
            "upstream",
            [str(BIN_DIR / "cocoon-fake-upstream"), "--port", "0", "--model", MODEL, "--threads", "1"]
            + self.upstream_args,
        )
        line = up.stdout.readline().decode()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, f"fake upstream did not start: {line!r}"
        self.upstream_url = m.group(1)

    def start_proxy(self):
        """Starts the proxy (again, after `kill("proxy")`) on the network's ports and ledger."""
        p = self.ports
        self._spawn(
            "proxy",
            [
                str(BIN_DIR / "cocoon-proxy"), "--local",
                "--worker-listen", f"127.0.0.1:{p['proxy_workers']}",
                "--client-listen", f"127.0.0.1:{p['proxy_clients']}",
                "--stats-listen", f"127.0.0.1:{p['proxy_stats']}",
                "--ledger-url", self.ledger_url,
                "--data-dir", str(self.tmp / f"proxy-data-{p['proxy_clients']}"),
            ]
            + self.proxy_args,
        )
        self.wait_http(f"http://127.0.0.1:{p['proxy_stats']}/health", "proxy")

    def ledger(self, *args):
        """Runs `cocoon-proxy ledger ARGS --json` on this network's books (read-only, also while
        the proxy runs) and answers its standard output."""
        out = subprocess.run(
            [str(BIN_DIR / "cocoon-proxy"), "ledger", *args, "--json", "--ledger-url", self.ledger_url],
            capture_output=True,
            timeout=60,
        )
        assert out.returncode == 0, f"cocoon-proxy ledger {' '.join(args)}: {out.stderr.decode(errors='replace')}"
        return out.stdout.decode()

    def model_files(self):
        """The file standing for the upstream's weights (MODEL_HASH)."""
        path = self.tmp / "upstream-weights.bin"
        path.write_bytes(MODEL_WEIGHTS)
        return path

    def engine_args(self):
        if self.builtin_model is not None:
            return ["--model-path", str(self.builtin_model)]
        if self.speech_model is not None:
            return ["--speech-model", str(self.speech_model)]
        pinned = any(a in ("--model-files", "--model-hash") for a in self.worker_args)
        return ["--upstream-url", self.upstream_url] + (
            [] if pinned else ["--model-files", str(self.model_files())]
        )

    def start_worker(self):
        p = self.ports
        self._spawn(
            "worker",
            [
                str(BIN_DIR / "cocoon-worker"), "--local",
                "--model", MODEL,
            ]
            + self.engine_args()
            + [
                "--stats-listen", f"127.0.0.1:{p['worker_stats']}",
                "--data-dir", str(self.tmp / f"worker-data-{p['worker_stats']}"),
            ]
            + (["--proxy", f"127.0.0.1:{p['proxy_workers']}"] if self.name_proxy else [])
            + self.worker_args,
        )
        self.wait_http(f"http://127.0.0.1:{p['worker_stats']}/health", "worker")

    def wait_http(self, url, name, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                status, _ = http_get(url)
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} not ready at {url}:\n{self.log(name)}")

    def wait_for_model(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                _, body = http_get(f"{self.base_url}/models", headers=self.auth)
                if any(m["id"] == MODEL for m in json.loads(body)["data"]):
                    return
            except (urllib.error.URLError, ConnectionError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError("the worker never appeared in /v1/models:\n" + self.log("proxy") + self.log("worker"))

    def proxy_stats(self):
        _, body = http_get(f"http://127.0.0.1:{self.ports['proxy_stats']}/jsonstats")
        return json.loads(body)

    def worker_stats(self):
        _, body = http_get(f"http://127.0.0.1:{self.ports['worker_stats']}/jsonstats")
        return json.loads(body)

    def client_stats(self):
        _, body = http_get(f"http://127.0.0.1:{self.ports['client']}/jsonstats", headers=self.auth)
        return json.loads(body)

    def kill(self, name):
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def stop(self):
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Emulator:
    """A `cocoon-chain-emulator` process and the JSON it printed."""

    def __init__(self, tmp: Path, args):
        self.log = open(tmp / "emulator.log", "ab")
        self.proc = subprocess.Popen(
            [str(BIN_DIR / "cocoon-chain-emulator"), *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        line = self.proc.stdout.readline().decode()
        assert line, f"the emulator did not start:\n{(tmp / 'emulator.log').read_text()}"
        self.info = json.loads(line)
        self.spec = f"emulated={self.info['listen']}"

    def root(self, *update):
        """Sends one root-owner update (`cocoon-chain-emulator root ...`); answers the registry
        after it."""
        out = subprocess.run(
            [
                str(BIN_DIR / "cocoon-chain-emulator"), "root",
                "--connect", self.info["listen"],
                "--root", self.info["root"],
                "--owner", self.info["root_owner"],
                *update,
            ],
            capture_output=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        return json.loads(out.stdout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = Network(tmp_path_factory.mktemp("net")).start()
    yield net
    net.stop()


@pytest.fixture
def make_network(tmp_path):
    nets = []

    def make(**kwargs):
        net = Network(tmp_path, **kwargs).start()
        nets.append(net)
        return net

    yield make
    for n in nets:
        n.stop()


# The embedded model, as scripts/test caches it.
EMBEDDED_GGUF = (
    Path(os.environ.get("COCOON_CACHE", Path.home() / ".cache" / "cocoon"))
    / "models"
    / "SmolLM2-135M-Instruct.Q4_1.gguf"
)


@pytest.fixture
def builtin_network(make_network):
    """A network whose worker runs the built-in engine on the embedded model."""
    if not EMBEDDED_GGUF.exists():
        if os.environ.get("COCOON_REQUIRE_CACHED_MODELS"):
            pytest.fail(f"{EMBEDDED_GGUF} is not cached")
        pytest.skip(f"{EMBEDDED_GGUF} is not cached (scripts/test fetches it)")
    return make_network(builtin_model=EMBEDDED_GGUF)


# Whisper tiny.en and a recorded sentence, fetched by scripts/test (`fetch_whisper_tiny_en`).
WHISPER_DIR = Path.home() / ".cache" / "cocoon" / "models" / "whisper-tiny.en-ct2"


@pytest.fixture
def speech_network(make_network):
    """A network whose worker's built-in engine transcribes with Whisper tiny.en."""
    if not (WHISPER_DIR / "model.bin").exists():
        if os.environ.get("COCOON_REQUIRE_CACHED_MODELS"):
            pytest.fail(f"{WHISPER_DIR} is not cached")
        pytest.skip(f"{WHISPER_DIR} is not cached (scripts/test fetches it)")
    return make_network(speech_model=WHISPER_DIR)


def chat_status(net, i):
    """Chat request number `i` (a few tokens) through `net`'s client: its status and JSON body,
    an error status included."""
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": 16}
    ).encode()
    req = urllib.request.Request(
        f"{net.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
