"""Conversations: threads of questions and answers kept per user.

A turn is answered by the same `answer_compose` / `answer_stream` as a one-off question, with the thread's
earlier turns as its history (so the follow-up is rewritten into a standalone query first, see
`search.rewrite`), and stored with the query that was searched, the answer and its citations. A turn that
failed is kept with its error but is left out of later turns' history.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404

from search.answer import HISTORY_TURNS
from search.models import Conversation, ConversationTurn
from search.services import answer_compose, answer_stream
from search.types import Answer

TITLE_CHARS = 200


def conversations_of(user) -> QuerySet[Conversation]:
    """The user's own conversations, most recently continued first. Nobody reads another's thread."""
    if not getattr(user, "is_authenticated", False):
        return Conversation.objects.none()
    return Conversation.objects.filter(user=user)


def conversation_get_or_404(conversation_id: int, user) -> Conversation:
    conversation = conversations_of(user).filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def conversation_create(user, *, title: str = "", collections: list[str] | None = None) -> Conversation:
    return Conversation.objects.create(
        user=user, title=" ".join(title.split())[:TITLE_CHARS], collections=list(collections or [])
    )


def conversation_history(conversation: Conversation) -> list[dict[str, str]]:
    """The last answered turns as {question, answer}, oldest first: what the next turn is asked after."""
    turns = list(
        conversation.turns.filter(error="")
        .order_by("-created_at", "-id")
        .values("question", "answer")[:HISTORY_TURNS]
    )
    return list(reversed(turns))


def _turn_start(conversation: Conversation, question: str) -> ConversationTurn:
    with transaction.atomic():
        turn = ConversationTurn.objects.create(conversation=conversation, question=question)
        fields = ["updated_at"]
        if not conversation.title:
            conversation.title = " ".join(question.split())[:TITLE_CHARS]
            fields.append("title")
        conversation.save(update_fields=fields)
    return turn


def conversation_answer(
    conversation: Conversation, question: str, **kwargs: Any
) -> tuple[ConversationTurn, Answer]:
    """Answer `question` as the next turn of `conversation` (kwargs as `answer_compose`'s, without
    `history`). The turn is stored also when the answer fails (with its error), then the error re-raised."""
    history = conversation_history(conversation)
    turn = _turn_start(conversation, question)
    try:
        answer = answer_compose(question, history=history or None, **kwargs)
    except Exception as exc:
        turn.error = f"{type(exc).__name__}: {exc}"[:5000]
        turn.save(update_fields=["error"])
        raise
    turn.search_query = answer.search_query
    turn.rewrite_method = answer.rewrite_method
    turn.answer = answer.text
    turn.citations = [c.as_dict() for c in answer.citations]
    turn.found = answer.found
    turn.query_log_id = answer.query_log_id
    turn.save()
    return turn, answer


def conversation_answer_stream(
    conversation: Conversation, question: str, **kwargs: Any
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`answer_stream` for the next turn: first a "turn" event {id, conversation_id}, then the answer's
    events; the turn is completed from them when the stream ends, however it ends."""
    history = conversation_history(conversation)
    turn = _turn_start(conversation, question)
    parts: list[str] = []
    error = "client disconnected"
    try:
        yield "turn", {"id": turn.pk, "conversation_id": conversation.pk}
        for name, data in answer_stream(question, history=history or None, **kwargs):
            if name == "sources":
                turn.search_query = data["search_query"]
                turn.rewrite_method = data["rewrite_method"]
            elif name == "delta":
                parts.append(data["text"])
            elif name == "citations":
                turn.citations = data["citations"]
            elif name == "done":
                turn.found = data["found"]
                turn.query_log_id = data["query_id"]
                error = ""
            elif name == "error":
                error = data["message"]
            yield name, data
    finally:
        turn.answer = "".join(parts)
        turn.error = error
        turn.save()
