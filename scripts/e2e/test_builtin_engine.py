"""The built-in engine behind a whole network (client → proxy → worker), asked through the
official `openai` SDK: JSON answers held to `response_format` by constrained decoding,
log-probabilities returned, and what it cannot do (tool calls, schema keywords it cannot
enforce) refused with a 400 that names the field, never silently ignored."""

import json

import openai
import pytest

from conftest import MODEL

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def sdk(net):
    return openai.OpenAI(base_url=net.base_url, api_key="unused", max_retries=0, timeout=120)


def test_unhonoured_fields_are_refused_by_name(builtin_network):
    client = sdk(builtin_network)
    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    for extra, field, param in [
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "string", "pattern": "^a"}}}},
            "pattern",
            "response_format",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format", "response_format"),
        ({"top_logprobs": 2}, "top_logprobs", "top_logprobs"),
        ({"tools": [tool]}, "tools", "tools"),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, **extra)
        assert f"`{field}`" in str(refused.value), refused.value
        assert refused.value.param == param, refused.value.body
    # What asks for plain text anyway is accepted.
    answer = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4, response_format={"type": "text"}, logprobs=False
    )
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_json_schema_answers_validate_and_json_objects_parse(builtin_network):
    client = sdk(builtin_network)
    schema = {
        "type": "object",
        "properties": {
            "language": {"type": "string", "enum": ["French", "German", "Spanish"]},
            "translation": {"type": "string"},
            "confidence": {"type": "number"},
        },
        "required": ["language", "translation", "confidence"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Translate 'good morning' into French. Answer in JSON."}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "translation", "schema": schema, "strict": True}},
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "stop", choice
    value = json.loads(choice.message.content)
    assert set(value) == {"language", "translation", "confidence"}, value
    assert value["language"] in schema["properties"]["language"]["enum"]
    assert isinstance(value["translation"], str) and isinstance(value["confidence"], (int, float))
    assert answer.usage.completion_tokens <= 40

    # Streamed, sampled, with a tight budget: the object still closes and parses.
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a cat in JSON."}],
        max_tokens=12,
        temperature=1.0,
        seed=5,
        stream=True,
        response_format={"type": "json_object"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert isinstance(json.loads(text), dict), text


def test_logprobs_come_back_for_every_token(builtin_network):
    client = sdk(builtin_network)
    answer = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=10, temperature=0, logprobs=True, top_logprobs=2
    )
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    assert "".join(bytes(e.bytes).decode("utf-8", "replace") for e in content) == answer.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].token == entry.token  # greedy: the most likely one
