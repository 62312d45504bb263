"""The official openai SDK (a client nobody here wrote) against the stand-in."""

from __future__ import annotations

import pytest

from genapi.local.audio import make_wav

openai = pytest.importorskip("openai")

SOURCES = "[1] Geography\nMount Everest is the highest mountain above sea level. It is in the Himalayas."
QUESTION = "What is the highest mountain?"


@pytest.fixture
def sdk(standin):
    client = openai.OpenAI(base_url=standin.base_url, api_key="anything", max_retries=0)
    yield client
    client.close()


def test_models_and_embeddings(sdk):
    ids = [m.id for m in sdk.models.list()]
    assert "bge-multilingual-gemma2" in ids
    emb = sdk.embeddings.create(model="bge-multilingual-gemma2", input=["one", "two"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 3584
    # The SDK asks for base64 by default when numpy is around, and decodes it itself.
    emb = sdk.embeddings.create(model="all-minilm-l6-v2", input="one", encoding_format="float")
    assert len(emb.data[0].embedding) == 384


def test_chat_non_stream_and_stream(sdk):
    messages = [{"role": "system", "content": SOURCES}, {"role": "user", "content": QUESTION}]
    out = sdk.chat.completions.create(model="llama-3.1-8b-instruct", messages=messages)
    text = out.choices[0].message.content
    assert "Everest" in text and "[1]" in text and out.usage.total_tokens > 0
    stream = sdk.chat.completions.create(
        model="llama-3.1-8b-instruct", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == text and usage.completion_tokens > 0


def test_responses_non_stream_and_stream(sdk):
    out = sdk.responses.create(model="gpt-oss-120b", instructions=SOURCES, input=QUESTION)
    assert "Everest" in out.output_text
    deltas, completed = [], None
    for event in sdk.responses.create(
        model="gpt-oss-120b", instructions=SOURCES, input=QUESTION, stream=True
    ):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    assert "".join(deltas) == out.output_text and completed.usage.output_tokens > 0


def test_transcription(sdk):
    wav = make_wav(1.0, comment="Hello from the test double.")
    out = sdk.audio.transcriptions.create(model="whisper-large-v3", file=("hello.wav", wav, "audio/wav"))
    assert out.text == "Hello from the test double."
    text = sdk.audio.transcriptions.create(
        model="whisper-large-v3", file=("hello.wav", wav, "audio/wav"), response_format="text"
    )
    assert "Hello from the test double." in str(text)


def test_sdk_sees_errors(sdk):
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="no-such-model", input="x")
