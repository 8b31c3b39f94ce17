"""A real llama.cpp server on loopback, as the upstream a worker forwards to.

Two ways to get one, the same llama.cpp server code either way:

- `llama-server`, built from the llama.cpp source inside the llama-cpp-python sdist by
  `scripts/build-llama-server` into $COCOON_CACHE/llama.cpp/build/bin (35 minutes on two cores,
  so CI does not build it; $COCOON_LLAMA_SERVER names another binary);
- the server that the `xllamacpp` wheel from PyPI embeds (prebuilt, nothing to compile), started
  by `xllamacpp_server.py` in a child Python process; CI runs this one.

`LlamaUpstream.start(kind, ...)` skips the test with the reason when its kind is not installed.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, http_get

CACHE = Path(os.environ.get("COCOON_CACHE", Path.home() / ".cache" / "cocoon"))
LLAMA_SERVER = Path(os.environ.get("COCOON_LLAMA_SERVER", CACHE / "llama.cpp" / "build" / "bin" / "llama-server"))
HERE = Path(__file__).resolve().parent
KINDS = ["llama-server", "xllamacpp"]


def _has_xllamacpp() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import xllamacpp"], capture_output=True)
    return probe.returncode == 0


class LlamaUpstream:
    """One llama.cpp server process serving `model` with a context of `ctx` tokens in one slot."""

    def __init__(self, kind, tmp: Path, model: Path, ctx: int, threads: int):
        self.kind = kind
        self.log_path = tmp / f"{kind}-{ctx}.log"
        log = open(self.log_path, "ab")
        if kind == "llama-server":
            port = free_port()
            args = [
                str(LLAMA_SERVER), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                "-c", str(ctx), "-np", "1", "-t", str(threads), "-tb", str(threads),
                "--metrics", "--slots", "--no-webui",
            ]
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
            self.url = f"http://127.0.0.1:{port}"
        else:
            args = [sys.executable, str(HERE / "xllamacpp_server.py"), str(model), str(ctx), str(threads)]
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
            line = self.proc.stdout.readline().decode()
            m = re.search(r"listening on (http://\S+)", line)
            assert m, f"the xllamacpp server did not start: {line!r}\n{self.log()}"
            self.url = m.group(1)
        self._wait_ready()

    @classmethod
    def start(cls, kind, tmp, model, ctx=512, threads=1):
        if kind == "llama-server" and not LLAMA_SERVER.exists():
            pytest.skip(
                f"{LLAMA_SERVER} is not built (35 min on 2 cores, so not in CI): build it with "
                "scripts/build-llama-server, or run scripts/test with COCOON_LLAMA_SERVER_BUILD=1"
            )
        if kind == "xllamacpp" and not _has_xllamacpp():
            why = f"the xllamacpp wheel is not installed in {sys.executable} (scripts/test installs it)"
            if os.environ.get("COCOON_REQUIRE_CACHED_MODELS"):
                pytest.fail(why)
            pytest.skip(why)
        return cls(kind, tmp, model, ctx, threads)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout=120.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.kind} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = http_get(self.url + "/health")
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.kind} not ready at {self.url}:\n{self.log()}")

    def post(self, path, body: dict):
        """POSTs `body` straight to the server; answers (status, parsed JSON)."""
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def slots(self):
        _, body = http_get(self.url + "/slots", timeout=10)
        return json.loads(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
