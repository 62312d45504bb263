"""The stand-in's chat completions and responses: extractive answers (see `answer`), whole or streamed.

A mixin of `Engines`, so the HTTP handlers and batch processing call `engines.chat(body)` and
`engines.responses(body)` like every other engine.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from genapi.limiter import estimate_tokens
from genapi.local import answer as answer_mod
from genapi.local.catalogue import MODELS, error, model_check


class Generation:
    # -- chat -------------------------------------------------------------------------------------

    @staticmethod
    def _check_chat(model: Any, messages: Any, max_tokens: Any):
        bad = model_check(model, "chat")
        if bad:
            return bad, 0
        if not isinstance(messages, list) or not messages:
            return error(400, "`messages` must be a non-empty array", param="messages"), 0
        prompt = sum(
            estimate_tokens(answer_mod.content_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        )
        ctx = MODELS[model]["context"]
        if prompt + (max_tokens or 0) > ctx:
            # vLLM's wording and error shape.
            return (
                400,
                {
                    "object": "error",
                    "message": f"This model's maximum context length is {ctx} tokens. However, you requested "
                    f"{prompt + (max_tokens or 0)} tokens ({prompt} in the messages, "
                    f"{max_tokens or 0} in the "
                    "completion). Please reduce the length of the messages or completion.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
            ), prompt
        return None, prompt

    @staticmethod
    def _tool_call(tools: list, tool_choice: Any, text: str, cited: list[int]):
        name = None
        if isinstance(tool_choice, dict):
            name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        tool = next((t for t in tools if (t.get("function") or t).get("name") == name), tools[0])
        fn = tool.get("function") or tool
        args = answer_mod.fill_schema(
            fn.get("parameters") or {"type": "object", "properties": {}}, text, cited
        )
        return fn.get("name"), json.dumps(args)

    def chat(self, body: dict[str, Any]):
        """Returns ``(status, body)`` or ``(200, [chunk dicts])`` when streaming."""
        model, messages = body.get("model"), body.get("messages")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        bad, prompt_tokens = self._check_chat(model, messages, max_tokens)
        if bad:
            return bad
        text, cited = answer_mod.answer_for(messages, body.get("response_format"))
        tools = body.get("tools") or []
        tool_choice = body.get("tool_choice")
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if tools and (tool_choice == "required" or isinstance(tool_choice, dict)):
            name, args = self._tool_call(tools, tool_choice, text, cited)
            call = {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": estimate_tokens(args)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if body.get("stream"):
                return 200, [
                    self._chunk(
                        cid, created, model, {"role": "assistant", "tool_calls": [{"index": 0, **call}]}
                    ),
                    self._chunk(cid, created, model, {}, "tool_calls"),
                    *([self._usage_chunk(cid, created, model, usage)] if self._wants_usage(body) else []),
                ]
            return 200, self._completion(cid, created, model, message, "tool_calls", usage)
        pieces = answer_mod.split_tokens(text)
        finish = "stop"
        if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
            pieces, finish = pieces[:max_tokens], "length"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces)}
        usage["total_tokens"] = prompt_tokens + len(pieces)
        if body.get("stream"):
            chunks = [self._chunk(cid, created, model, {"role": "assistant", "content": ""})]
            chunks += [self._chunk(cid, created, model, {"content": p}) for p in pieces]
            chunks.append(self._chunk(cid, created, model, {}, finish))
            if self._wants_usage(body):
                chunks.append(self._usage_chunk(cid, created, model, usage))
            return 200, chunks
        message = {"role": "assistant", "content": "".join(pieces)}
        return 200, self._completion(cid, created, model, message, finish, usage)

    @staticmethod
    def _wants_usage(body):
        return bool((body.get("stream_options") or {}).get("include_usage"))

    @staticmethod
    def _completion(cid, created, model, message, finish, usage):
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }

    @staticmethod
    def _chunk(cid, created, model, delta, finish=None):
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    @staticmethod
    def _usage_chunk(cid, created, model, usage):
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }

    # -- responses --------------------------------------------------------------------------------

    def responses(self, body: dict[str, Any]):
        model = body.get("model")
        raw = body.get("input")
        if isinstance(raw, str):
            messages = [{"role": "user", "content": raw}]
        elif isinstance(raw, list):
            messages = [m for m in raw if isinstance(m, dict) and m.get("role")]
        else:
            return error(400, "`input` is required", param="input")
        if body.get("instructions"):
            messages = [{"role": "system", "content": body["instructions"]}, *messages]
        max_out = body.get("max_output_tokens")
        bad, prompt_tokens = self._check_chat(model, messages, max_out)
        if bad:
            return bad
        fmt = ((body.get("text") or {}).get("format")) or None
        if fmt and fmt.get("type") == "json_schema":
            fmt = {"type": "json_schema", "json_schema": {"schema": fmt.get("schema")}}
        text, cited = answer_mod.answer_for(messages, fmt)
        pieces = answer_mod.split_tokens(text)
        status = "completed"
        if isinstance(max_out, int) and 0 < max_out < len(pieces):
            pieces, status = pieces[:max_out], "incomplete"
        text = "".join(pieces)
        rid, mid, created = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}", int(time.time())
        usage = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(pieces),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + len(pieces),
        }
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {"id": mid, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        base = {
            "id": rid,
            "object": "response",
            "created_at": created,
            "model": model,
            "instructions": body.get("instructions"),
            "tools": body.get("tools") or [],
            "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": True,
            "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        }
        final = {**base, "status": status, "output": [item], "usage": usage}
        if not body.get("stream"):
            return 200, final
        events: list[dict[str, Any]] = []
        start = {**base, "status": "in_progress", "output": [], "usage": None}
        events.append({"type": "response.created", "response": start})
        events.append({"type": "response.in_progress", "response": start})
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            }
        )
        empty = {"type": "output_text", "text": "", "annotations": []}
        ids = {"item_id": mid, "output_index": 0, "content_index": 0}
        events.append({"type": "response.content_part.added", **ids, "part": empty})
        for p in pieces:
            events.append({"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []})
        events.append({"type": "response.output_text.done", **ids, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **ids, "part": part})
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
        events.append({"type": f"response.{status}", "response": final})
        for n, ev in enumerate(events):
            ev["sequence_number"] = n
        return 200, events
