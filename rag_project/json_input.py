"""JSON from clients, bounded: what PostgreSQL cannot store or Python cannot walk is a 400, never a 500.

- nesting deeper than `MAX_JSON_DEPTH` (Python's decoder raises RecursionError around a thousand levels,
  and every recursive walk of the value after it would too);
- NUL characters and unpaired surrogates in any string or key (PostgreSQL text and jsonb refuse both);
- numbers that are not finite (`1e999` parses to infinity, which jsonb refuses).

`BoundedJSONParser` applies this to every JSON request body (the REST framework's default parser);
`json_loads_bounded` and `json_value_problem` do the same for JSON that arrives inside another field
(multipart metadata) or that a serializer field accepts as-is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_value_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` (parsed JSON) is not acceptable, or None. Iterative: depth cannot crash the walk."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return "Strings may not contain NUL characters or unpaired surrogates."
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "Numbers must be finite."
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"JSON is nested more than {max_depth} levels deep."
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def json_loads_bounded(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that raises ValueError (with a message for people) for anything refused above."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ValueError(f"JSON is nested more than {max_depth} levels deep.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"Not valid JSON: {exc}") from exc
    problem = json_value_problem(value, max_depth)
    if problem:
        raise ValueError(problem)
    return value


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the bounds above (its own catches ValueError but not RecursionError)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep.") from exc
        problem = json_value_problem(value)
        if problem:
            raise ParseError(f"JSON parse error - {problem}")
        return value
