"""Follow-up questions rewritten into standalone search queries before retrieval.

"And how often?" after "How do I rotate signing keys?" finds nothing on its own. With
`RAG_QUERY_REWRITE=model` the chat model rewrites the follow-up from the thread's last turns (one short,
cheap call at temperature 0); when it is not configured, fails, or answers with something that is not a
query, the deterministic rewrite (`search.answer.search_query_rewrite`: the question plus the previous
question's key terms) is used instead, so a provider outage never stops a follow-up from being answered.
The method used is returned, stored with the turn and shown to the person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from genapi import GenAPIError
from genapi.completions import text_complete
from search.answer import history_clean, search_query_rewrite

log = logging.getLogger(__name__)

REWRITE_METHODS = ("terms", "model")
MAX_REWRITE_CHARS = 500
REWRITE_TURNS = 3  # the model sees the last three turns: enough for "it", "that one", "and then?"
REWRITE_ANSWER_CHARS = 600

# The stand-in (genapi.local) recognises this task by the phrase "standalone search query".
REWRITE_INSTRUCTIONS = """You rewrite the last question of a conversation into a standalone search \
query for a knowledge base.

Rules:
- Resolve pronouns and references ("it", "that", "the second one") from the earlier turns.
- Keep the question's own words; add only the words needed to make it understandable alone.
- Answer with the query only, on one line: no quotes, no explanation, no answer to the question."""


@dataclass(frozen=True)
class Rewrite:
    query: str
    method: str  # "none" (no history), "model" or "terms"

    def as_dict(self) -> dict[str, str]:
        return {"query": self.query, "method": self.method}


def rewrite_messages(question: str, history: list[dict[str, str]]) -> list[dict[str, str]]:
    """One user message: the last turns as a transcript, then the follow-up."""
    lines = ["Conversation so far:"]
    for turn in history_clean(history)[-REWRITE_TURNS:]:
        lines.append(f"User: {turn['question']}")
        if turn["answer"]:
            lines.append(f"Assistant: {turn['answer'][:REWRITE_ANSWER_CHARS]}")
    lines.append("")
    lines.append(f"Follow-up question: {' '.join(question.split())}")
    return [{"role": "user", "content": "\n".join(lines)}]


def _model_output_clean(text: str) -> str:
    """The first non-empty line without quotes or a "Query:" label; "" when it is not a usable query."""
    for line in (text or "").splitlines():
        line = line.strip().strip("\"'`“”").strip()
        for label in ("standalone query:", "search query:", "query:"):
            if line.lower().startswith(label):
                line = line[len(label) :].strip()
        if line:
            if len(line) > MAX_REWRITE_CHARS or "don't know" in line.lower() or "[" in line:
                return ""  # an answer, a refusal or a citation: not a query
            return line
    return ""


def query_rewrite(question: str, history: list[dict[str, str]] | None) -> Rewrite:
    """The standalone query to search for `question` after `history` ({question, answer} turns)."""
    question = " ".join(question.split())
    if not history or not any(turn.get("question") for turn in history):
        return Rewrite(question, "none")
    if settings.RAG_QUERY_REWRITE == "model":
        try:
            completion = text_complete(
                api="chat",
                model=settings.GENAPI_CHAT_MODEL,
                messages=rewrite_messages(question, history),
                instructions=REWRITE_INSTRUCTIONS,
                temperature=0.0,
            )
        except GenAPIError as exc:
            log.warning("query rewrite by the model failed, using key terms instead: %s", exc)
        else:
            query = _model_output_clean(completion.text)
            if query:
                return Rewrite(query, "model")
            log.warning("the model's rewrite was not a query, using key terms instead")
    return Rewrite(search_query_rewrite(question, history), "terms")
