"""Extractive answers: quote the source sentences that best match the question and cite them ``[n]``.

A test double for a language model, not a language model: it never says anything that is not in a source.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from genapi.local.text import STOPWORDS, stem, terms, words

IDK = "I don't know based on the provided sources."

_HEADER_RE = re.compile(r"^\s*(?:Source\s*)?\[(\d{1,3})\]\s?(.*)$", re.IGNORECASE)
_QUESTION_RE = re.compile(r"^\s*(?:#+\s*)?(question|query|user question|q)\s*[:?]\s*(.*)$", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                out.append(str(part.get("text") or ""))
            elif isinstance(part, str):
                out.append(part)
        return "\n".join(out)
    return ""


def parse_sources(text: str) -> tuple[dict[int, str], str]:
    """``{n: source text}`` from ``[n] Title (page 3)\\n<text>`` blocks, and the text outside any block."""
    sources: dict[int, list[str]] = {}
    outside: list[str] = []
    current: int | None = None
    for line in text.splitlines():
        m = _HEADER_RE.match(line)
        if m:
            current = int(m.group(1))
            sources.setdefault(current, [])
            if m.group(2).strip():
                # "[n] Title (page 3)" then the text: keep the title apart so it never fuses with a sentence.
                sources[current].extend([m.group(2), ""])
            continue
        q = _QUESTION_RE.match(line)
        if q:
            current = None
            outside.append(q.group(2))
            continue
        if current is None:
            outside.append(line)
        else:
            sources[current].append(line)
    return {n: "\n".join(lines).strip() for n, lines in sources.items()}, "\n".join(outside).strip()


def sentences(text: str) -> list[str]:
    parts = []
    for chunk in _SENTENCE_RE.split(text):
        chunk = " ".join(chunk.split())
        if len(chunk) >= 3:
            parts.append(chunk)
    return parts


def extract_question_and_sources(messages: list[dict[str, Any]]) -> tuple[str, dict[int, str]]:
    sources: dict[int, str] = {}
    question = ""
    last_user_outside = ""
    for msg in messages:
        text = content_text(msg.get("content"))
        found, outside = parse_sources(text)
        for n, s in found.items():
            if s:
                sources[n] = s
        if msg.get("role") == "user":
            last_user_outside = outside if found else text
    question = last_user_outside.strip()
    return question, sources


def compose(question: str, sources: dict[int, str], max_sentences: int = 3) -> tuple[str, list[int]]:
    """Return the answer text and the source numbers it cites."""
    q_terms = set(terms(question))
    if not q_terms or not sources:
        return IDK, []
    candidates: list[tuple[int, int, str, set[str]]] = []
    for n in sorted(sources):
        for pos, sent in enumerate(sentences(sources[n])):
            candidates.append((n, pos, sent, set(terms(sent))))
    if not candidates:
        return IDK, []
    df: Counter = Counter()
    for *_, ts in candidates:
        df.update(ts & q_terms)
    total = len(candidates)
    idf = {t: math.log(1 + (total + 1) / (df[t] + 0.5)) for t in q_terms}
    q_mass = sum(idf.values())
    scored = []
    for n, pos, sent, ts in candidates:
        matched = ts & q_terms
        if not matched:
            continue
        coverage = sum(idf[t] for t in matched) / q_mass
        # Prefer focused sentences: a long sentence matching one word is weaker than a short one.
        score = coverage / (1 + 0.01 * max(0, len(ts) - 25))
        scored.append((score, coverage, n, pos, sent))
    if not scored:
        return IDK, []
    scored.sort(key=lambda x: (-x[0], x[2], x[3]))
    best = scored[0]
    meaningful = best[1] >= 0.3 or (len(q_terms) >= 4 and best[1] >= 0.2)
    if not meaningful:
        return IDK, []
    chosen = [best]
    for cand in scored[1:]:
        if len(chosen) >= max_sentences:
            break
        if cand[0] >= 0.6 * best[0] and cand[4] not in {c[4] for c in chosen}:
            chosen.append(cand)
    pieces, cited = [], []
    for _, _, n, _, sent in chosen:
        sent = sent.rstrip()
        pieces.append(f"{sent} [{n}]")
        if n not in cited:
            cited.append(n)
    return " ".join(pieces), cited


def fill_schema(schema: dict[str, Any] | None, answer: str, cited: list[int], depth: int = 0) -> Any:
    """Produce a value matching a JSON schema from the extractive answer (for structured outputs/tools)."""
    schema = schema or {}
    if depth > 6:
        return None
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return fill_schema(schema[key][0], answer, cited, depth + 1)
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    if typ == "object" or (typ is None and "properties" in schema):
        props = schema.get("properties") or {}
        if not props:
            return {"answer": answer, "citations": cited}
        return {k: fill_schema(v, answer, cited, depth + 1) for k, v in props.items()}
    if typ == "array":
        items = schema.get("items") or {}
        itype = items.get("type")
        if itype in ("integer", "number"):
            return list(cited)
        if itype == "string":
            return [answer] if answer != IDK else []
        return [fill_schema(items, answer, cited, depth + 1)] if cited else []
    if typ == "integer":
        return cited[0] if cited else 0
    if typ == "number":
        return float(cited[0]) if cited else 0.0
    if typ == "boolean":
        return answer != IDK
    return answer


_FOLLOW_UP_RE = re.compile(r"^\s*follow-up question:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_EARLIER_USER_RE = re.compile(r"^\s*user:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


def rewrite_for(messages: list[dict[str, Any]]) -> str | None:
    """A query-rewrite task (instructions asking for a "standalone search query", a transcript and a
    "Follow-up question:" line): the follow-up plus the earlier questions' words it lacks. None when the
    messages are not such a task. Deterministic, like everything here."""
    system = " ".join(content_text(m.get("content")) for m in messages if m.get("role") == "system")
    if "standalone search query" not in system.lower():
        return None
    user = "\n".join(content_text(m.get("content")) for m in messages if m.get("role") == "user")
    follow = _FOLLOW_UP_RE.search(user)
    if not follow:
        return None
    question = follow.group(1).strip()
    present = set(terms(question))
    extra: list[str] = []
    for earlier in reversed(_EARLIER_USER_RE.findall(user)):
        for word in words(earlier):
            if word not in STOPWORDS and stem(word) not in present and word not in extra:
                extra.append(word)
        if extra:
            break
    return " ".join([question.rstrip("?"), *extra[:8]]).strip()


_CHECK_ITEM_RE = re.compile(r"^Item (\d+)\nCLAIM: (.*)\nPASSAGE: (.*)$", re.MULTILINE)


def verdicts_for(text: str) -> str | None:
    """A citation-check request ("Item k / CLAIM: ... / PASSAGE: ..." blocks) gets "k: yes|no" lines:
    yes when the passage holds at least 60% of the claim's words. None for any other message."""
    items = _CHECK_ITEM_RE.findall(text)
    if not items:
        return None
    lines = []
    for number, claim, passage in items:
        claim_terms, passage_terms = set(terms(claim)), set(terms(passage))
        share = len(claim_terms & passage_terms) / len(claim_terms) if claim_terms else 1.0
        lines.append(f"{number}: {'yes' if share >= 0.6 else 'no'}")
    return "\n".join(lines)


def answer_for(
    messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
) -> tuple[str, list[int]]:
    rewritten = rewrite_for(messages)
    if rewritten is not None:
        return rewritten, []
    last_user = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    verdicts = verdicts_for(last_user)
    if verdicts is not None:
        return verdicts, []
    question, sources = extract_question_and_sources(messages)
    text, cited = compose(question, sources)
    fmt = (response_format or {}).get("type")
    if fmt == "json_schema":
        js = response_format.get("json_schema") or response_format
        schema = js.get("schema") if isinstance(js, dict) else None
        return json.dumps(fill_schema(schema or {"type": "object"}, text, cited)), cited
    if fmt == "json_object":
        return json.dumps({"answer": text, "citations": cited}), cited
    return text, cited


def split_tokens(text: str) -> list[str]:
    """Pieces to stream: words with their trailing whitespace (re-joining gives the text back exactly)."""
    return re.findall(r"\S+\s*|\s+", text) or [text]
