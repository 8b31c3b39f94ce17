"""A worker forwarding to a real llama.cpp server on the embedded model, driven through the
client's HTTP API by the official `openai` package: answers equal to the server's own, usage
metered from its JSON and its SSE and charged as metered, a closed stream cancelling the
generation inside llama.cpp, and llama.cpp's own refusals reaching the caller as typed OpenAI
errors. Each test runs against `llama-server` built from source and against the server the
`xllamacpp` wheel embeds (see llama_upstream.py for which runs where)."""

import time

import openai
import pytest

from books import assert_books_balance, ledger_requests
from conftest import EMBEDDED_GGUF, MODEL, Network, wait_for
from llama_upstream import KINDS, LlamaUpstream

# A small context, so that a long prompt meets llama.cpp's own limit.
CONTEXT = 512
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# Chunks that may be on their way to the caller when it closes a stream, and so charged unread.
IN_FLIGHT = 4


@pytest.fixture(scope="module", params=KINDS)
def served(request, tmp_path_factory):
    """(llama.cpp server, network whose worker forwards to it), shared by a module's tests."""
    if not EMBEDDED_GGUF.exists():
        pytest.skip(f"{EMBEDDED_GGUF} is not cached (scripts/test fetches it)")
    tmp = tmp_path_factory.mktemp(request.param)
    upstream = LlamaUpstream.start(request.param, tmp, EMBEDDED_GGUF, ctx=CONTEXT)
    # The weights are the GGUF the server runs: the worker hashes it as its model files.
    net = Network(tmp, upstream_url=upstream.url, worker_args=["--model-files", str(EMBEDDED_GGUF)])
    try:
        net.start()
    except BaseException:
        upstream.stop()
        raise
    yield upstream, net
    net.stop()
    upstream.stop()


def api(net):
    return openai.OpenAI(base_url=net.base_url, api_key="unused", max_retries=0, timeout=300)


def latest_charge(net, before):
    records = ledger_requests(net)
    assert len(records) == before + 1, records[before:]
    return records[-1]


def assert_charged_as(record, usage):
    """The proxy's books charged exactly the usage the caller was shown."""
    assert record["cached_tokens"] + record["uncached_prompt_tokens"] == usage["prompt_tokens"], (record, usage)
    assert record["visible_completion_tokens"] + record["reasoning_tokens"] == usage["completion_tokens"], (record, usage)
    assert record["client_charge"] == usage["total_cost"], (record, usage)


def test_answer_and_usage_equal_llama_servers_own(served):
    upstream, net = served
    ask = {"messages": QUESTION, "max_tokens": 12, "temperature": 0}
    status, direct = upstream.post("/v1/chat/completions", ask)
    assert status == 200, direct
    before = len(ledger_requests(net))
    answer = api(net).chat.completions.create(model=MODEL, **ask)
    text = answer.choices[0].message.content
    assert text and text == direct["choices"][0]["message"]["content"], (text, direct)
    usage = answer.usage.model_dump()
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert usage[key] == direct["usage"][key], (usage, direct["usage"])
    assert usage["total_cost"] > 0
    assert_charged_as(latest_charge(net, before), usage)


def test_streamed_answer_and_usage_from_sse(served):
    upstream, net = served
    ask = {"messages": QUESTION, "max_tokens": 12, "temperature": 0}
    _, direct = upstream.post("/v1/chat/completions", ask)
    before = len(ledger_requests(net))
    stream = api(net).chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True}, **ask
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage.model_dump()
    assert "".join(pieces) == direct["choices"][0]["message"]["content"]
    assert finish == direct["choices"][0]["finish_reason"]
    assert usage is not None, "the stream carried no usage"
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert usage[key] == direct["usage"][key], (usage, direct["usage"])
    assert_charged_as(latest_charge(net, before), usage)


def test_closed_stream_stops_generation_and_charges_what_was_received(served):
    upstream, net = served
    count = [{"role": "user", "content": "Count from one to one thousand."}]
    # The prompt as llama.cpp counts it (its chat template included).
    _, direct = upstream.post("/v1/chat/completions", {"messages": count, "max_tokens": 1})
    before = len(ledger_requests(net))
    max_tokens = 400
    # End-of-turn and end-of-text banned: only the length limit (or the caller) ends it.
    stream = api(net).chat.completions.create(
        model=MODEL, messages=count, max_tokens=max_tokens, temperature=0, stream=True,
        logit_bias={"0": -100, "2": -100},
    )
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
            if received == 3:
                break
    stream.close()
    # llama.cpp cancels the task (its own log says so) and its one slot goes idle, long before
    # it could have generated the rest.
    deadline = time.time() + 10
    while time.time() < deadline and any(s["is_processing"] for s in upstream.slots()):
        time.sleep(0.1)
    assert not any(s["is_processing"] for s in upstream.slots()), upstream.log()[-3000:]
    wait_for("llama.cpp to log the cancellation", lambda: "cancel task" in upstream.log(), timeout=10)
    # Charged: llama.cpp's running counts in the last chunk the worker relayed (it sends usage
    # only at the end): its whole prompt, and the tokens the caller received plus at most the
    # few chunks in flight when it closed.
    record = latest_charge(net, before)
    assert record["uncached_prompt_tokens"] + record["cached_tokens"] == direct["usage"]["prompt_tokens"], record
    charged = record["visible_completion_tokens"] + record["reasoning_tokens"]
    assert received <= charged <= received + IN_FLIGHT, (received, record)
    assert_books_balance(net)


def test_prompt_over_the_context_is_a_typed_error(served):
    upstream, net = served
    before = len(ledger_requests(net))
    too_long = [{"role": "user", "content": "word " * (CONTEXT * 2)}]
    status, direct = upstream.post("/v1/chat/completions", {"messages": too_long, "max_tokens": 4})
    assert 400 <= status < 500 and "context" in direct["error"]["message"], direct
    client = api(net)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=too_long, max_tokens=4)
    assert refused.value.body == direct["error"], refused.value.body
    # Streamed, llama.cpp refuses before its first event: the same error, not a broken stream.
    with pytest.raises(openai.BadRequestError) as refused:
        for _ in client.chat.completions.create(model=MODEL, messages=too_long, max_tokens=4, stream=True):
            pass
    assert refused.value.body == direct["error"], refused.value.body
    # Refused work is not charged.
    assert len(ledger_requests(net)) == before
