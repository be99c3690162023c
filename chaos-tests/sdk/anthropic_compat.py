#!/usr/bin/env python3
"""The official Anthropic Python SDK against a Raftgate gateway (`POST /v1/messages`),
used as an application would, in front of an Anthropic and an OpenAI provider.

Configuration (environment):
  RAFTGATE_URL             the gateway's data plane, e.g. http://127.0.0.1:8080
  RAFTGATE_KEY             a Raftgate API key
  RAFTGATE_MODEL_CHAT      a model served by an OpenAI mock provider
  RAFTGATE_MODEL_CLAUDE    a model served by an Anthropic mock provider
  RAFTGATE_MODEL_FORBIDDEN a model the key holds no permission for
  RAFTGATE_MODEL_LIMITED   a model whose quota admits exactly one call for this key

Prints one line per check; exits 1 on the first failed check, naming it.
"""

import os
import sys
import traceback

import anthropic
from anthropic import Anthropic

URL = os.environ["RAFTGATE_URL"].rstrip("/")
KEY = os.environ["RAFTGATE_KEY"]
CHAT = os.environ["RAFTGATE_MODEL_CHAT"]
CLAUDE = os.environ["RAFTGATE_MODEL_CLAUDE"]
FORBIDDEN = os.environ["RAFTGATE_MODEL_FORBIDDEN"]
LIMITED = os.environ["RAFTGATE_MODEL_LIMITED"]

client = Anthropic(base_url=URL, api_key=KEY, max_retries=0, timeout=20)

SYSTEM = "You are a test."
TOOLS = [{
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
}]
TOOL_INPUT = {"city": "mock", "unit": "c"}


def words(s):
    return len(s.split())


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def check(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report any failure with its check's name
        print(f"FAIL anthropic-sdk {name}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        sys.exit(1)
    print(f"ok   anthropic-sdk {name}", flush=True)


def create(model):
    def run():
        user = f"hello from the anthropic sdk to {model}"
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=256, system=SYSTEM, messages=[{"role": "user", "content": user}])
        expect(raw.headers.get("x-raftgate-provider"), f"no x-raftgate-provider: {dict(raw.headers)}")
        m = raw.parse()
        text = f"mock reply to: {user}"
        expect(m.type == "message" and m.role == "assistant", f"message {m}")
        expect(m.model == model, f"model {m.model!r}")
        expect(len(m.content) == 1 and m.content[0].type == "text", f"content {m.content}")
        expect(m.content[0].text == text, f"text {m.content[0].text!r}")
        expect(m.stop_reason == "end_turn", f"stop_reason {m.stop_reason!r}")
        expect(m.usage.input_tokens == words(SYSTEM) + words(user), f"usage {m.usage}")
        expect(m.usage.output_tokens == words(text), f"usage {m.usage}")
    return run


def max_tokens_stop(model):
    def run():
        m = client.messages.create(model=model, max_tokens=2, messages=[{"role": "user", "content": "hi there"}])
        expect(m.stop_reason == "max_tokens", f"stop_reason {m.stop_reason!r}")
        expect(m.content[0].text == "mock reply", f"text {m.content[0].text!r}")
    return run


def stream(model):
    def run():
        user = f"stream please from {model}"
        with client.messages.stream(model=model, max_tokens=256, system=SYSTEM,
                                    messages=[{"role": "user", "content": user}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        expected = f"mock reply to: {user}"
        expect(text == expected, f"streamed text {text!r}")
        expect(final.content[0].text == expected, f"final message {final.content}")
        expect(final.stop_reason == "end_turn", f"stop_reason {final.stop_reason!r}")
        expect(final.usage.output_tokens == words(expected), f"usage {final.usage}")
        expect(final.model == model, f"model {final.model!r}")
    return run


def tool_use(model):
    def run():
        question = [{"role": "user", "content": "what is the weather in Paris"}]
        m = client.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=question)
        expect(m.stop_reason == "tool_use", f"stop_reason {m.stop_reason!r}")
        uses = [b for b in m.content if b.type == "tool_use"]
        expect(len(uses) == 1, f"content {m.content}")
        use = uses[0]
        expect(use.name == "get_weather", f"tool {use.name!r}")
        expect(use.input == TOOL_INPUT, f"input {use.input!r}")
        # The agent loop as the SDK's docs write it: the response's content back, then the
        # tool_result; the answer is text.
        follow = question + [
            {"role": "assistant", "content": m.content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 degrees"}]},
        ]
        m2 = client.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=follow)
        expect(m2.stop_reason == "end_turn", f"follow-up stop_reason {m2.stop_reason!r}")
        expect(m2.content and m2.content[0].type == "text", f"follow-up content {m2.content}")
        expect(m2.content[0].text.startswith("mock reply to:"), f"follow-up text {m2.content[0].text!r}")
    return run


def stream_tool_use(model):
    def run():
        with client.messages.stream(model=model, max_tokens=256, tools=TOOLS,
                                    messages=[{"role": "user", "content": "weather?"}]) as s:
            final = s.get_final_message()
        uses = [b for b in final.content if b.type == "tool_use"]
        expect(len(uses) == 1, f"content {final.content}")
        expect(uses[0].name == "get_weather", f"tool {uses[0].name!r}")
        expect(uses[0].input == TOOL_INPUT, f"streamed input {uses[0].input!r}")
        expect(final.stop_reason == "tool_use", f"stop_reason {final.stop_reason!r}")
    return run


def raises(exc, fn, what):
    try:
        fn()
    except exc as e:
        return e
    except anthropic.APIStatusError as e:
        raise AssertionError(f"{what}: {type(e).__name__} ({e.status_code}) instead of {exc.__name__}: {e}")
    raise AssertionError(f"{what}: no exception, expected {exc.__name__}")


def hello(model, c=client, **extra):
    return lambda: c.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}], **extra)


def error_type(e):
    body = e.body if isinstance(e.body, dict) else {}
    return (body.get("error") or {}).get("type")


def authentication_error():
    bad = Anthropic(base_url=URL, api_key="rg_not_a_valid_key", max_retries=0, timeout=20)
    e = raises(anthropic.AuthenticationError, hello(CLAUDE, bad), "wrong key")
    expect(error_type(e) == "authentication_error", f"body {e.body}")


def permission_denied_error():
    e = raises(anthropic.PermissionDeniedError, hello(FORBIDDEN), "model without permission")
    expect(error_type(e) == "permission_error", f"body {e.body}")


def not_found_error():
    e = raises(anthropic.NotFoundError, hello("no-such-model"), "unknown model")
    expect(error_type(e) == "not_found_error", f"body {e.body}")


def bad_request_error():
    # Sent as extra_body: the SDK's own signature for sampling parameters varies by version.
    e = raises(anthropic.BadRequestError,
               hello(CLAUDE, extra_body={"temperature": 7.5}),
               "temperature out of range")
    expect(error_type(e) == "invalid_request_error", f"body {e.body}")


def rate_limit_error():
    hello(LIMITED)()  # the one call the quota admits
    e = raises(anthropic.RateLimitError, hello(LIMITED), "second call over the quota")
    retry_after = e.response.headers.get("retry-after")
    expect(retry_after is not None and retry_after.isdigit(), f"retry-after {retry_after!r}")
    expect(error_type(e) == "rate_limit_error", f"body {e.body}")


check(f"messages.create ({CLAUDE}, Anthropic provider)", create(CLAUDE))
check(f"messages.create ({CHAT}, OpenAI provider)", create(CHAT))
check(f"stop_reason max_tokens ({CLAUDE})", max_tokens_stop(CLAUDE))
check(f"stop_reason max_tokens ({CHAT})", max_tokens_stop(CHAT))
check(f"messages.stream text ({CLAUDE})", stream(CLAUDE))
check(f"messages.stream text ({CHAT})", stream(CHAT))
check(f"tool use and tool_result ({CLAUDE})", tool_use(CLAUDE))
check(f"tool use and tool_result ({CHAT})", tool_use(CHAT))
check(f"streamed tool use ({CLAUDE})", stream_tool_use(CLAUDE))
check(f"streamed tool use ({CHAT})", stream_tool_use(CHAT))
check("AuthenticationError (401)", authentication_error)
check("PermissionDeniedError (403)", permission_denied_error)
check("NotFoundError (404)", not_found_error)
check("BadRequestError (400)", bad_request_error)
check("RateLimitError (429, retry-after)", rate_limit_error)
print("anthropic-sdk: all checks passed", flush=True)
