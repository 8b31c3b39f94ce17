"""Allow-lists from the root registry, followed while the network runs.

The proxy, the worker and the client read the root of an emulated chain (`cocoon-chain-emulator`
with the real compiled contracts) before admitting a peer, and again every second here. The test
changes the root while they run, the way its owner would, and checks each role's reaction:

- every role reports the root, its version and lists in `/jsonstats`, and the image hash it
  presents equals the one computed from attestation.md's definition;
- a worker image removed from the root: the proxy disconnects the worker and refuses its
  reconnections (image hash not allowed); allowed again, the worker is back;
- a model removed: the proxy refuses the worker that serves it; a worker serving other weights
  under the listed name is refused too (models are allowed by the SHA-256 of their weights);
- a proxy image removed: the client and the worker close their sessions and refuse the proxy;
  allowed again, requests flow.

The emulator needs `npm ci` in contracts/ (scripts/test runs it); without it the test is skipped.
"""

import hashlib
import time

import pytest
from openai import OpenAI

from chain import NEEDS_CHAIN
from conftest import MODEL, MODEL_HASH, SIMULATED_IMAGE_HASH, Emulator, Network

pytestmark = NEEDS_CHAIN



def wait_for(what, check, timeout=30.0, logs=lambda: ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = check()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def ask(net):
    client = OpenAI(base_url=net.base_url, api_key="unused", max_retries=0, timeout=20)
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "registry check"}], max_tokens=8
    )
    return r.choices[0].message.content


def test_roles_follow_the_root_registry(tmp_path):
    emu = Emulator(
        tmp_path,
        [
            "--allow-proxy-image", SIMULATED_IMAGE_HASH,
            "--allow-worker-image", SIMULATED_IMAGE_HASH,
            "--allow-model", MODEL_HASH,
            "--register-proxy", "127.0.0.1:11002 127.0.0.1:11001",
        ],
    )
    root = emu.info["root"]
    follow = ["--registry-chain", emu.spec, "--registry-root", root, "--registry-refresh-secs", "1"]
    net = Network(tmp_path, proxy_args=follow, worker_args=follow, client_args=follow)
    logs = lambda: "\n".join(f"--- {n}\n{net.log(n)[-5000:]}" for n in ("proxy", "worker", "client"))
    try:
        net.start()
        assert ask(net)

        # Each role shows the registry it follows and the image hash it presents.
        for stats in (net.proxy_stats(), net.worker_stats(), net.client_stats()):
            reg = stats["registry"]
            assert reg["root"] == root and reg["last_error"] is None, reg
            assert reg["proxy_image_hashes"] == [SIMULATED_IMAGE_HASH]
            assert reg["worker_image_hashes"] == [SIMULATED_IMAGE_HASH]
            assert reg["model_hashes"] == [MODEL_HASH]
            assert reg["registered_proxies"] == ["0 127.0.0.1:11002 127.0.0.1:11001"], reg
        assert net.proxy_stats()["image_hash"] == SIMULATED_IMAGE_HASH
        assert net.worker_stats()["image_hash"] == SIMULATED_IMAGE_HASH
        assert net.worker_stats()["model_hash"] == MODEL_HASH
        version = net.proxy_stats()["registry"]["version"]

        # The owner removes the worker image: the proxy drops the worker and refuses it.
        after = emu.root("disallow-worker-image", SIMULATED_IMAGE_HASH)
        assert after["worker_image_hashes"] == [] and after["version"] > version
        wait_for("the proxy to drop the worker", lambda: net.proxy_stats()["workers"] == [], logs=logs)
        wait_for(
            "a refused reconnection",
            lambda: "not allowed" in net.log("proxy") and "no longer allowed" in net.log("proxy"),
            logs=logs,
        )
        assert net.proxy_stats()["registry"]["worker_image_hashes"] == []
        with pytest.raises(Exception) as refused:
            ask(net)
        assert "503" in str(refused.value) or "no worker" in str(refused.value).lower(), refused.value

        # Allowed again: the worker is back and answers.
        emu.root("allow-worker-image", SIMULATED_IMAGE_HASH)
        wait_for("the worker to come back", lambda: len(net.proxy_stats()["workers"]) == 1, logs=logs)
        wait_for("an answer", lambda: ask(net), logs=logs)

        # The model removed: the proxy refuses the worker that announces it.
        emu.root("disallow-model", MODEL_HASH)
        wait_for("the proxy to drop the worker", lambda: net.proxy_stats()["workers"] == [], logs=logs)
        wait_for("the model refusal", lambda: "are not allowed by the root registry" in net.log("proxy"), logs=logs)
        emu.root("allow-model", MODEL_HASH)
        wait_for("the worker to come back", lambda: len(net.proxy_stats()["workers"]) == 1, logs=logs)

        # Other weights under the listed name: the name only routes, the registry allows
        # weights, so the proxy refuses the worker that serves them.
        impostor = tmp_path / "other-weights.bin"
        impostor.write_bytes(b"other weights behind the same name\n")
        impostor_hash = hashlib.sha256(impostor.read_bytes()).hexdigest()
        honest_args = net.worker_args
        net.kill("worker")
        net.worker_args = honest_args + ["--model-files", str(impostor)]
        net.start_worker()
        assert net.worker_stats()["model_hash"] == impostor_hash
        wait_for("the refusal of other weights", lambda: impostor_hash in net.log("proxy"), logs=logs)
        assert net.proxy_stats()["workers"] == []
        net.kill("worker")
        net.worker_args = honest_args
        net.start_worker()
        wait_for("the worker to come back", lambda: len(net.proxy_stats()["workers"]) == 1, logs=logs)

        # The proxy image removed: the client and the worker leave the proxy.
        emu.root("disallow-proxy-image", SIMULATED_IMAGE_HASH)
        wait_for("the client to leave", lambda: not net.client_stats()["connected"], logs=logs)
        wait_for("the worker to leave", lambda: net.worker_stats()["proxies"] == [], logs=logs)
        assert "no longer allowed by the root registry" in net.log("client")
        assert "no longer allowed by the root registry" in net.log("worker")
        with pytest.raises(Exception):
            ask(net)

        # Allowed again: everything reconnects and answers.
        emu.root("allow-proxy-image", SIMULATED_IMAGE_HASH)
        wait_for("the client to reconnect", lambda: net.client_stats()["connected"], logs=logs)
        wait_for("the worker to reconnect", lambda: len(net.proxy_stats()["workers"]) == 1, logs=logs)
        wait_for("an answer", lambda: ask(net), logs=logs)
    finally:
        net.stop()
        emu.stop()


def test_workers_and_clients_find_proxies_in_the_registry(tmp_path):
    net = Network(tmp_path)
    p = net.ports
    endpoint = f"127.0.0.1:{p['proxy_clients']} 127.0.0.1:{p['proxy_workers']}"
    emu = Emulator(
        tmp_path,
        [
            "--allow-proxy-image", SIMULATED_IMAGE_HASH,
            "--allow-worker-image", SIMULATED_IMAGE_HASH,
            "--allow-model", MODEL_HASH,
            "--register-proxy", endpoint,
        ],
    )
    follow = [
        "--registry-chain", emu.spec, "--registry-root", emu.info["root"],
        "--registry-refresh-secs", "1",
    ]
    net.name_proxy = False
    net.proxy_args = list(follow)
    net.worker_args = follow + ["--proxies-from-registry"]
    net.client_args = follow + ["--proxy-from-registry"]
    logs = lambda: "\n".join(f"--- {n}\n{net.log(n)[-5000:]}" for n in ("proxy", "worker", "client"))
    try:
        net.start()
        assert ask(net)
        assert net.client_stats()["proxy"] == f"127.0.0.1:{p['proxy_clients']}"
        assert [x["address"] for x in net.worker_stats()["proxies"]] == [f"127.0.0.1:{p['proxy_workers']}"]

        # The owner removes the registration: the worker and the client leave the proxy.
        after = emu.root("remove-proxy", "0")
        assert after["registered_proxies"] == []
        wait_for("the worker to leave", lambda: net.worker_stats()["proxies"] == [], logs=logs)
        wait_for("the client to leave", lambda: not net.client_stats()["connected"], logs=logs)
        assert "no longer lists this proxy" in net.log("worker")
        assert "no longer lists this proxy" in net.log("client")

        # Registered again (under a new seqno): both come back.
        after = emu.root("register-proxy", endpoint)
        assert after["registered_proxies"] == [{"seqno": 1, "endpoint": endpoint}]
        wait_for("the worker to come back", lambda: len(net.proxy_stats()["workers"]) == 1, logs=logs)
        wait_for("the client to come back", lambda: net.client_stats()["connected"], logs=logs)
        wait_for("an answer", lambda: ask(net), logs=logs)
    finally:
        net.stop()
        emu.stop()
