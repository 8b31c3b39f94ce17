"""The built-in engine behind a whole network (client → proxy → worker), asked through the
official `openai` SDK: it answers, and what it cannot do (JSON output, log-probabilities, tool
calls) is refused with a 400 that names the field, never silently ignored."""

import openai
import pytest

from conftest import MODEL

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_unhonoured_fields_are_refused_by_name(builtin_network):
    client = openai.OpenAI(base_url=builtin_network.base_url, api_key="unused", max_retries=0, timeout=120)
    answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    for extra, field in [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}},
            "response_format",
        ),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"tools": [tool]}, "tools"),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, **extra)
        assert f"`{field}`" in str(refused.value), refused.value
    # What asks for plain text anyway is accepted.
    answer = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4, response_format={"type": "text"}, logprobs=False
    )
    assert answer.choices[0].finish_reason in ("stop", "length")
