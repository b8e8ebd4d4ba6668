"""The official Python `openai` SDK against a running appliance: argv = base URL, key, rate-limited key.
Each check raises on failure; the last line printed is a JSON list of the checks that passed."""
import json
import math
import sys

import openai

base, key, limited_key = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
passed = []
user = lambda text: [{"role": "user", "content": text}]
weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "enum": ["Oslo", "Paris"]}}, "required": ["city"]}}}


def check(name):
    def wrap(fn):
        fn()
        passed.append(name)
    return wrap


@check("chat + multi-turn echo")
def _():
    r = client.chat.completions.create(model="tiny", messages=user("hello"), max_tokens=8)
    echoed = r.choices[0].message.model_dump(exclude_none=False)  # refusal: None and all
    r2 = client.chat.completions.create(model="tiny", messages=user("hello") + [echoed] + user("more"), max_tokens=4)
    assert r2.choices[0].message.role == "assistant"


@check("stream")
def _():
    chunks = list(client.chat.completions.create(model="tiny", messages=user("hello"), max_tokens=8, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


@check("json_object + json_schema")
def _():
    r = client.chat.completions.create(model="tiny", messages=user("json please"), max_tokens=64, temperature=0,
                                       response_format={"type": "json_object"})
    json.loads(r.choices[0].message.content)
    r = client.chat.completions.create(model="tiny", messages=user("json"), max_tokens=200, temperature=0, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}})
    assert isinstance(json.loads(r.choices[0].message.content)["ok"], bool)


@check("tools forced, streamed, result sent back")
def _():
    r = client.chat.completions.create(model="tiny", messages=user("weather?"), tools=[weather], tool_choice="required", max_tokens=200)
    call = r.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments)["city"] in ("Oslo", "Paris")
    args = ""
    for c in client.chat.completions.create(model="tiny", messages=user("weather?"), tools=[weather], tool_choice="required", max_tokens=200, stream=True):
        for t in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            args += t.function.arguments or ""
    assert json.loads(args)["city"] in ("Oslo", "Paris")
    client.chat.completions.create(model="tiny", max_tokens=4, tools=[weather], messages=user("weather?") + [
        r.choices[0].message.model_dump(exclude_none=False), {"role": "tool", "tool_call_id": call.id, "content": "3"}])


@check("embeddings unit length")
def _():
    r = client.embeddings.create(model="tiny", input=["a", "b"])
    assert abs(math.hypot(*r.data[0].embedding) - 1) < 1e-3


@check("responses")
def _():
    r = client.responses.create(model="tiny", input="hello", max_output_tokens=8)
    assert isinstance(r.output_text, str)
    events = [e.type for e in client.responses.create(model="tiny", input="hello", max_output_tokens=8, stream=True)]
    assert events[0] == "response.created" and events[-1] in ("response.completed", "response.incomplete")


@check("error classes 400/401/404/429")
def _():
    for fn, cls in [
        (lambda: client.chat.completions.create(model="tiny", messages=user("x"), temperature=5), openai.BadRequestError),
        (lambda: openai.OpenAI(base_url=base + "/v1", api_key="nope", max_retries=0).models.list(), openai.AuthenticationError),
        (lambda: client.chat.completions.create(model="nope", messages=user("x")), openai.NotFoundError),
    ]:
        try:
            fn()
            raise AssertionError(f"expected {cls.__name__}")
        except cls:
            pass
    limited = openai.OpenAI(base_url=base + "/v1", api_key=limited_key, max_retries=0)
    limited.models.list()
    try:
        limited.models.list()
        raise AssertionError("expected RateLimitError")
    except openai.RateLimitError:
        pass


print(json.dumps(passed))
