#!/usr/bin/env python3
"""The official OpenAI Python SDK against a Raftgate gateway, used as an application would.

Configuration (environment):
  RAFTGATE_URL             the gateway's data plane, e.g. http://127.0.0.1:8080
  RAFTGATE_KEY             a Raftgate API key
  RAFTGATE_MODEL_CHAT      a model served by an OpenAI mock provider
  RAFTGATE_MODEL_CLAUDE    a model served by an Anthropic mock provider
  RAFTGATE_MODEL_EMBED     an embeddings model (OpenAI mock provider)
  RAFTGATE_MODEL_FORBIDDEN a model the key holds no permission for
  RAFTGATE_MODEL_LIMITED   a model whose quota admits exactly one call for this key
  RAFTGATE_EXPECTED_MODELS comma-separated ids /v1/models must list for the key
  RAFTGATE_EMBEDDINGS      JSON: {"inputs": [...], "vectors": [[...], ...]} the mock's vectors

Prints one line per check; exits 1 on the first failed check, naming it.
"""

import json
import os
import sys
import traceback

import openai
from openai import OpenAI

URL = os.environ["RAFTGATE_URL"].rstrip("/")
KEY = os.environ["RAFTGATE_KEY"]
CHAT = os.environ["RAFTGATE_MODEL_CHAT"]
CLAUDE = os.environ["RAFTGATE_MODEL_CLAUDE"]
EMBED = os.environ["RAFTGATE_MODEL_EMBED"]
FORBIDDEN = os.environ["RAFTGATE_MODEL_FORBIDDEN"]
LIMITED = os.environ["RAFTGATE_MODEL_LIMITED"]
EXPECTED_MODELS = set(filter(None, os.environ["RAFTGATE_EXPECTED_MODELS"].split(",")))
EMBEDDINGS = json.loads(os.environ["RAFTGATE_EMBEDDINGS"])

client = OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0, timeout=20)

SYSTEM = "You are a test."
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}]
TOOL_ARGS = {"city": "mock", "unit": "c"}


def words(s):
    return len(s.split())


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def messages(user):
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def check(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report any failure with its check's name
        print(f"FAIL openai-sdk {name}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        sys.exit(1)
    print(f"ok   openai-sdk {name}", flush=True)


def chat(model):
    def run():
        user = f"hello from the openai sdk to {model}"
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages(user))
        provider = raw.headers.get("x-raftgate-provider")
        expect(provider, f"no x-raftgate-provider header: {dict(raw.headers)}")
        r = raw.parse()
        text = f"mock reply to: {user}"
        expect(r.model == model, f"model {r.model!r}")
        expect(r.choices[0].message.content == text, f"content {r.choices[0].message.content!r}")
        expect(r.choices[0].finish_reason == "stop", f"finish_reason {r.choices[0].finish_reason!r}")
        expect(r.usage.prompt_tokens == words(SYSTEM) + words(user), f"usage {r.usage}")
        expect(r.usage.completion_tokens == words(text), f"usage {r.usage}")
        expect(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage {r.usage}")
    return run


def stream(model, include_usage):
    def run():
        user = f"stream please from {model}"
        kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
        s = client.chat.completions.create(model=model, messages=messages(user), stream=True, **kwargs)
        text, finish, usage = "", None, []
        for chunk in s:
            if chunk.usage is not None:
                usage.append(chunk.usage)
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        expected = f"mock reply to: {user}"
        expect(text == expected, f"streamed text {text!r}")
        expect(finish == "stop", f"finish_reason {finish!r}")
        if include_usage:
            expect(len(usage) == 1, f"usage chunks {usage}")
            u = usage[0]
            expect(u.prompt_tokens == words(SYSTEM) + words(user), f"usage {u}")
            expect(u.completion_tokens == words(expected), f"usage {u}")
        else:
            expect(not usage, f"usage chunks without include_usage: {usage}")
    return run


def tools(model):
    def run():
        question = [{"role": "user", "content": "what is the weather in Paris"}]
        r = client.chat.completions.create(model=model, messages=question, tools=TOOLS)
        choice = r.choices[0]
        expect(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason!r}")
        calls = choice.message.tool_calls or []
        expect(len(calls) == 1, f"tool_calls {calls}")
        call = calls[0]
        expect(call.function.name == "get_weather", f"tool {call.function.name!r}")
        expect(json.loads(call.function.arguments) == TOOL_ARGS, f"arguments {call.function.arguments!r}")
        # The agent loop as the SDK's docs write it: the assistant message object itself,
        # then the tool's result; the answer is text.
        follow = question + [
            choice.message,
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 degrees"},
        ]
        r2 = client.chat.completions.create(model=model, messages=follow, tools=TOOLS)
        expect(r2.choices[0].finish_reason == "stop", f"follow-up finish {r2.choices[0].finish_reason!r}")
        expect((r2.choices[0].message.content or "").startswith("mock reply to:"),
               f"follow-up content {r2.choices[0].message.content!r}")
        expect(not r2.choices[0].message.tool_calls, "follow-up called a tool again")
    return run


def stream_tools(model):
    def run():
        s = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True)
        name, args, finish, ids = "", "", None, set()
        for chunk in s:
            for c in chunk.choices:
                for tc in c.delta.tool_calls or []:
                    expect(tc.index == 0, f"tool call index {tc.index}")
                    if tc.id:
                        ids.add(tc.id)
                    if tc.function and tc.function.name:
                        name += tc.function.name
                    if tc.function and tc.function.arguments:
                        args += tc.function.arguments
                finish = c.finish_reason or finish
        expect(name == "get_weather", f"tool name {name!r}")
        expect(len(ids) == 1, f"tool call ids {ids}")
        expect(json.loads(args) == TOOL_ARGS, f"streamed arguments {args!r}")
        expect(finish == "tool_calls", f"finish_reason {finish!r}")
    return run


def embeddings(encoding):
    def run():
        kwargs = {"encoding_format": encoding} if encoding else {}
        r = client.embeddings.create(model=EMBED, input=EMBEDDINGS["inputs"], **kwargs)
        expect(r.model == EMBED, f"model {r.model!r}")
        expect(len(r.data) == len(EMBEDDINGS["inputs"]), f"{len(r.data)} embeddings")
        for d, want in zip(r.data, EMBEDDINGS["vectors"]):
            got = d.embedding
            expect(isinstance(got, list) and len(got) == len(want), f"embedding {got!r}")
            expect(all(abs(g - w) < 1e-5 for g, w in zip(got, want)), f"embedding {got} != {want}")
        expect(r.usage.prompt_tokens == sum(words(s) for s in EMBEDDINGS["inputs"]), f"usage {r.usage}")
    return run


def models_list():
    ids = {m.id for m in client.models.list()}
    expect(ids == EXPECTED_MODELS, f"models {sorted(ids)} != {sorted(EXPECTED_MODELS)}")


def raises(exc, fn, what):
    try:
        fn()
    except exc as e:
        return e
    except openai.APIStatusError as e:
        raise AssertionError(f"{what}: {type(e).__name__} ({e.status_code}) instead of {exc.__name__}: {e}")
    raise AssertionError(f"{what}: no exception, expected {exc.__name__}")


def hello(model, c=client, **extra):
    return lambda: c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **extra)


def authentication_error():
    bad = OpenAI(base_url=URL + "/v1", api_key="rg_not_a_valid_key", max_retries=0, timeout=20)
    e = raises(openai.AuthenticationError, hello(CHAT, bad), "wrong key")
    expect(e.status_code == 401, f"status {e.status_code}")
    raises(openai.AuthenticationError, lambda: list(bad.models.list()), "models with a wrong key")


def permission_denied_error():
    e = raises(openai.PermissionDeniedError, hello(FORBIDDEN), "model without permission")
    expect(e.status_code == 403, f"status {e.status_code}")


def not_found_error():
    e = raises(openai.NotFoundError, hello("no-such-model"), "unknown model")
    expect(e.code == "model_not_found", f"code {e.code!r}")


def bad_request_error():
    e = raises(openai.BadRequestError, hello(CLAUDE, logit_bias={"50256": -100}),
               "logit_bias to an Anthropic model")
    expect(e.param == "logit_bias", f"param {e.param!r} (body {e.body})")


def rate_limit_error():
    hello(LIMITED)()  # the one call the quota admits
    e = raises(openai.RateLimitError, hello(LIMITED), "second call over the quota")
    retry_after = e.response.headers.get("retry-after")
    expect(retry_after is not None and retry_after.isdigit(), f"retry-after {retry_after!r}")
    expect(e.code == "rate_limit_exceeded", f"code {e.code!r}")


check(f"chat ({CHAT}, OpenAI provider)", chat(CHAT))
check(f"chat ({CLAUDE}, Anthropic provider)", chat(CLAUDE))
check("stream with include_usage", stream(CHAT, True))
check("stream without include_usage", stream(CHAT, False))
check(f"stream ({CLAUDE}) with include_usage", stream(CLAUDE, True))
check(f"tool calls and the tool result ({CHAT})", tools(CHAT))
check(f"tool calls and the tool result ({CLAUDE})", tools(CLAUDE))
check(f"streamed tool calls ({CHAT})", stream_tools(CHAT))
check(f"streamed tool calls ({CLAUDE})", stream_tools(CLAUDE))
check("embeddings (SDK default: base64)", embeddings(None))
check("embeddings (float)", embeddings("float"))
check("models.list", models_list)
check("AuthenticationError (401)", authentication_error)
check("PermissionDeniedError (403)", permission_denied_error)
check("NotFoundError (404)", not_found_error)
check("BadRequestError (400, param)", bad_request_error)
check("RateLimitError (429, retry-after)", rate_limit_error)
print("openai-sdk: all checks passed", flush=True)
