"""The functions the rest of Citable calls: one embedding function, and text generation that returns text
and usage (never wire formats) through both provider APIs, streamed and not."""

from __future__ import annotations

import json

import pytest

from genapi import BadResponseError, InvalidRequestError
from genapi.completions import Completion, TextUsage, text_complete, text_stream
from genapi.embeddings import texts_embed

EMBED = "all-minilm-l6-v2"
CHAT = "mistral-small-3.2-24b-instruct-2506"
SOURCES = (
    "[1] Oceans of the world (page 3)\n"
    "The Pacific Ocean is the largest ocean on Earth. It covers about 165 million square kilometres.\n\n"
    "[2] Baking basics (page 1)\n"
    "Bread dough rises because yeast produces carbon dioxide."
)
INSTRUCTIONS = "Answer only from the sources and cite them as [n]."
MESSAGES = [
    {"role": "user", "content": "Where does bread come from?"},
    {"role": "assistant", "content": "From dough that rises [2]."},
    {"role": "user", "content": f"{SOURCES}\n\nQuestion: Which ocean is the largest?"},
]


def _bodies(capture, path_end: str) -> list[dict]:
    return [json.loads(body) for _, path, _, body in capture.requests if path.endswith(path_end)]


def test_texts_embed_asks_for_base64_and_returns_float_vectors(client, capture):
    result = texts_embed(["pumps", "valves"], model=EMBED, client=client)
    assert len(result.vectors) == 2 and all(len(v) == 384 for v in result.vectors)
    assert all(isinstance(x, float) for x in result.vectors[0])
    assert result.usage.prompt_tokens > 0
    assert [b["encoding_format"] for b in _bodies(capture, "/embeddings")] == ["base64"]
    # The same text embeds the same way as a query or as a passage.
    assert texts_embed(["pumps"], model=EMBED, client=client).vectors[0] == result.vectors[0]


def test_texts_embed_sends_dimensions_and_checks_every_vector(client, capture):
    assert len(texts_embed(["pumps"], model=EMBED, dimensions=128, client=client).vectors[0]) == 128
    assert _bodies(capture, "/embeddings")[-1]["dimensions"] == 128
    with pytest.raises(BadResponseError, match="returned 384 dimensions; 256 were expected"):
        texts_embed(["pumps"], model=EMBED, expect_dimensions=256, client=client)


def test_texts_embed_provider_errors_keep_the_taxonomy(client, standin):
    standin.set_knobs(fail_next={"status": 400, "endpoint": "embeddings"})
    with pytest.raises(InvalidRequestError):
        texts_embed(["pumps"], model=EMBED, client=client)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_text_complete_returns_text_usage_and_model(client, capture, api):
    completion = text_complete(
        api=api, model=CHAT, messages=MESSAGES, instructions=INSTRUCTIONS, temperature=0.2, client=client
    )
    assert isinstance(completion, Completion)
    assert "Pacific" in completion.text and "[1]" in completion.text
    assert completion.model == CHAT
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    if api == "responses":
        (body,) = _bodies(capture, "/responses")
        assert body["instructions"] == INSTRUCTIONS
        # Every turn, the assistant's too, is an input_text part (the contract knows no other input type).
        assert body["input"][1] == {
            "role": "assistant",
            "content": [{"type": "input_text", "text": "From dough that rises [2]."}],
        }
    else:
        (body,) = _bodies(capture, "/chat/completions")
        assert body["messages"][0] == {"role": "system", "content": INSTRUCTIONS}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_text_stream_yields_deltas_then_usage_equal_to_the_whole_answer(client, api):
    whole = text_complete(api=api, model=CHAT, messages=MESSAGES, instructions=INSTRUCTIONS, client=client)
    stream = text_stream(api=api, model=CHAT, messages=MESSAGES, instructions=INSTRUCTIONS, client=client)
    chunks = list(stream)
    deltas = [c.delta for c in chunks if c.delta]
    assert len(deltas) > 1
    assert "".join(deltas) == whole.text
    usages = [c.usage for c in chunks if c.usage is not None]
    assert usages and usages[-1].output_tokens > 0 and usages[-1].input_tokens > 0
    assert [c.model for c in chunks if c.model][:1] == [CHAT]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_text_stream_error_mid_stream_raises_from_the_iterator(client, standin, api):
    from genapi import GenAPIError

    endpoint = "chat/completions" if api == "chat" else "responses"
    standin.set_knobs(fail_next={"endpoint": endpoint, "in_stream": True})
    stream = text_stream(api=api, model=CHAT, messages=MESSAGES, client=client)
    with pytest.raises(GenAPIError):
        list(stream)


def test_text_stream_closed_early_releases_the_connection(client):
    stream = text_stream(api="chat", model=CHAT, messages=MESSAGES, client=client)
    next(c for c in stream if c.delta)
    stream.close()
    # The limiter slot and the connection came back: another call goes through at once.
    assert text_complete(api="chat", model=CHAT, messages=MESSAGES, client=client).text


def test_usage_reads_both_wire_shapes():
    assert TextUsage.from_wire({"prompt_tokens": 3, "completion_tokens": 4}) == TextUsage(3, 4)
    assert TextUsage.from_wire({"input_tokens": 5, "output_tokens": 6}).as_dict() == {
        "input_tokens": 5,
        "output_tokens": 6,
    }
    assert TextUsage.from_wire(None) == TextUsage(0, 0)


def test_unknown_api_is_refused():
    with pytest.raises(ValueError):
        text_complete(api="telepathy", model=CHAT, messages=MESSAGES)
