"""The client against the local stand-in over a real socket: endpoints, streaming, splitting, usage."""

from __future__ import annotations

import json

import pytest

from genapi import (
    BadResponseError,
    GenAPIClient,
    GenAPIConfig,
    InvalidRequestError,
    ModelNotFoundError,
    RerankHit,
    get_client,
    reset_client,
)
from genapi.local.audio import make_wav

EMBED = "all-minilm-l6-v2"
CHAT = "mistral-small-3.2-24b-instruct-2506"
SOURCES = (
    "Answer only from the sources and cite them as [n].\n\n"
    "[1] Oceans of the world (page 3)\n"
    "The Pacific Ocean is the largest ocean on Earth. It covers about 165 million square kilometres.\n\n"
    "[2] Baking basics (page 1)\n"
    "Bread dough rises because yeast produces carbon dioxide. Bake it at a high temperature."
)
MESSAGES = [
    {"role": "system", "content": SOURCES},
    {"role": "user", "content": "Which ocean is the largest?"},
]


def test_models_list(client):
    models = client.models_list()
    ids = {m["id"] for m in models}
    assert {"bge-multilingual-gemma2", "qwen3-embedding-8b", "whisper-large-v3", CHAT} <= ids
    assert all(m["object"] == "model" for m in models)


def test_embeddings_float_and_base64_agree(client, usage_records):
    texts = ["The Pacific is the largest ocean.", "Yeast makes bread rise."]
    floats = client.embeddings_create(EMBED, texts)
    b64 = client.embeddings_create(EMBED, texts, encoding_format="base64")
    assert len(floats.vectors) == 2 and len(floats.vectors[0]) == 384
    assert floats.vectors[0] == pytest.approx(b64.vectors[0], abs=1e-6)
    assert floats.model == EMBED and floats.usage.prompt_tokens > 0
    assert usage_records[-1].endpoint == "embeddings" and usage_records[-1].input_tokens > 0


def test_embeddings_dimensions(client):
    result = client.embeddings_create("qwen3-embedding-8b", ["hello"], dimensions=256)
    assert len(result.vectors[0]) == 256
    assert len(client.embeddings_create("qwen3-embedding-8b", ["hello"]).vectors[0]) == 4096


def test_embeddings_split_by_count_keeps_order(make_client, standin):
    client = make_client(embed_batch_size=3)
    texts = [f"document number {i} about topic {i * 7}" for i in range(10)]
    result = client.embeddings_create(EMBED, texts)
    assert standin.count("embeddings") == 4 and result.calls == 4
    single = [client.embeddings_create(EMBED, [t]).vectors[0] for t in (texts[0], texts[5], texts[9])]
    assert result.vectors[0] == pytest.approx(single[0])
    assert result.vectors[5] == pytest.approx(single[1])
    assert result.vectors[9] == pytest.approx(single[2])


def test_embeddings_split_by_token_budget(make_client, standin):
    client = make_client(embed_token_budget=10)
    texts = ["x" * 20] * 6  # 5 estimated tokens each: two per call
    assert len(client.embeddings_create(EMBED, texts).vectors) == 6
    assert standin.count("embeddings") == 3


def test_embeddings_empty_input_makes_no_call(client, standin):
    assert client.embeddings_create(EMBED, []).vectors == []
    assert standin.count("embeddings") == 0


def test_rerank_orders_best_first(client):
    docs = ["Bread needs yeast.", "The Pacific Ocean is the largest ocean.", "Cats sleep a lot."]
    hits = client.rerank("largest ocean", docs, model="bge-reranker-v2-m3", top_n=2)
    assert [h.index for h in hits][0] == 1 and len(hits) == 2
    assert hits[0].relevance_score > hits[1].relevance_score
    assert 0 <= hits[1].relevance_score <= hits[0].relevance_score <= 1


def test_rerank_splits_and_merges_by_score(make_client, standin):
    client = make_client(rerank_batch_size=4)
    docs = [f"filler text number {i} about gardening" for i in range(10)]
    docs[9] = "volcanic eruptions and lava flows of volcanoes"
    docs[2] = "a volcano"
    hits = client.rerank("volcanic eruptions lava", docs, model="qwen3-embedding-8b", top_n=3)
    assert standin.count("rerank") == 3
    assert hits[0].index == 9 and hits[0].document == docs[9]
    assert len(hits) == 3 and hits[0].relevance_score >= hits[1].relevance_score >= hits[2].relevance_score
    every = client.rerank("volcanic eruptions lava", docs, model="qwen3-embedding-8b")
    assert sorted(h.index for h in every) == list(range(10))


@pytest.mark.parametrize(
    "body",
    [
        {
            "object": "list",
            "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
        },
        {
            "results": [
                {"index": 0, "relevance_score": 0.1, "document": {"text": "a"}},
                {"index": 1, "relevance_score": 0.9},
            ]
        },
        {"id": "x", "data": [{"index": 0, "score": 0.1}, {"index": 1, "score": 0.9}]},  # vLLM /score-style
        {"results": [{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}]},
    ],
    ids=["scaleway", "jina-cohere", "vllm-data-score", "results-score"],
)
def test_rerank_reads_every_provider_shape(client, standin, body):
    standin.set_knobs(fail_next={"status": 200, "body": body, "endpoint": "rerank"})
    hits = client.rerank("q", ["a", "b"], model="bge-reranker-v2-m3")
    assert [h.index for h in hits] == [1, 0] and hits[0].relevance_score == pytest.approx(0.9)
    assert isinstance(hits[0], RerankHit)


def test_chat_non_stream_cites_sources(client, usage_records):
    out = client.chat_completions_create(model=CHAT, messages=MESSAGES)
    text = out["choices"][0]["message"]["content"]
    assert "Pacific" in text and "[1]" in text and "[2]" not in text
    assert out["usage"]["prompt_tokens"] > 0
    rec = usage_records[-1]
    assert (rec.endpoint, rec.model, rec.retries) == ("chat/completions", CHAT, 0)
    assert rec.output_tokens == out["usage"]["completion_tokens"]


def test_chat_says_it_does_not_know(client):
    messages = [MESSAGES[0], {"role": "user", "content": "Who won the 1998 football world cup?"}]
    out = client.chat_completions_create(model=CHAT, messages=messages)
    assert "don't know" in out["choices"][0]["message"]["content"]


def test_chat_stream_matches_non_stream(client, usage_records):
    whole = client.chat_completions_create(model=CHAT, messages=MESSAGES)["choices"][0]["message"]["content"]
    chunks = list(client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True))
    assert len(chunks) > 3 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["choices"] for c in chunks)  # the usage chunk the caller did not ask for is kept back
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_records[-1].output_tokens > 3  # real usage from the hidden usage chunk


def test_chat_stream_include_usage(client):
    chunks = list(
        client.chat_completions_create(
            model=CHAT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_chat_structured_output_and_tools(client):
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "citations": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["answer", "citations"],
    }
    out = client.chat_completions_create(
        model=CHAT,
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        reasoning_effort="low",
        temperature=0.2,
        max_tokens=200,
    )
    parsed = json.loads(out["choices"][0]["message"]["content"])
    assert parsed["citations"] == [1] and "Pacific" in parsed["answer"]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "Search the knowledge base",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
            },
        }
    ]
    out = client.chat_completions_create(model=CHAT, messages=MESSAGES, tools=tools, tool_choice="required")
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "search" and "query" in json.loads(call["function"]["arguments"])


def test_chat_max_tokens_truncates(client):
    out = client.chat_completions_create(model=CHAT, messages=MESSAGES, max_tokens=2)
    assert out["choices"][0]["finish_reason"] == "length"


def test_responses_non_stream(client, usage_records):
    out = client.responses_create(
        model="gpt-oss-120b", input="Which ocean is the largest?", instructions=SOURCES
    )
    assert out["object"] == "response" and out["status"] == "completed"
    assert "Pacific" in GenAPIClient.output_text(out) and "[1]" in GenAPIClient.output_text(out)
    assert (
        usage_records[-1].endpoint == "responses"
        and usage_records[-1].input_tokens == out["usage"]["input_tokens"]
    )


def test_responses_stream_events(client, usage_records):
    events = list(
        client.responses_create(
            model="gpt-oss-120b",
            input=[{"role": "user", "content": "Which ocean is the largest?"}],
            instructions=SOURCES,
            stream=True,
            text={"format": {"type": "text"}},
        )
    )
    types = [e["type"] for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert len(deltas) > 3 and "".join(deltas) == done["text"]
    assert usage_records[-1].output_tokens == events[-1]["response"]["usage"]["output_tokens"]


def test_responses_structured_output(client):
    fmt = {
        "type": "json_schema",
        "name": "answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
        "strict": True,
    }
    out = client.responses_create(
        model="gpt-oss-120b", input="Which ocean is the largest?", instructions=SOURCES, text={"format": fmt}
    )
    assert "Pacific" in json.loads(GenAPIClient.output_text(out))["answer"]


def test_transcription_reads_the_wav_comment(client, tmp_path):
    wav = make_wav(1.5, comment="Minutes of the board meeting.")
    assert (
        client.audio_transcriptions_create(
            wav, filename="board.wav", model="whisper-large-v3", language="en", prompt="board"
        )
        == "Minutes of the board meeting."
    )
    path = tmp_path / "silence.wav"
    path.write_bytes(make_wav(2.0))
    text = client.audio_transcriptions_create(path, filename="silence.wav", model="whisper-large-v3")
    assert "2.0 seconds" in text


def test_transcription_refuses_more_than_25_mb_before_sending(client, standin, tmp_path):
    big = b"\0" * (25 * 1024 * 1024 + 1)
    with pytest.raises(InvalidRequestError, match="25 MB"):
        client.audio_transcriptions_create(big, filename="big.wav", model="whisper-large-v3")
    path = tmp_path / "big.wav"
    path.write_bytes(big)
    with pytest.raises(InvalidRequestError):
        client.audio_transcriptions_create(path, filename="big.wav", model="whisper-large-v3")
    assert standin.count("audio/transcriptions") == 0


def test_unknown_model_is_model_not_found(client):
    with pytest.raises(ModelNotFoundError) as info:
        client.embeddings_create("no-such-model", ["x"])
    assert info.value.status == 404 and info.value.code == "model_not_found" and not info.value.retryable


def test_project_scoped_paths_and_api_key():
    from genapi import AuthenticationError
    from genapi.testing import local_server

    with local_server(api_key="s3cret") as srv:
        good = GenAPIClient(GenAPIConfig(base_url=f"{srv.root}/my-project/v1", api_key="s3cret"))
        assert good.embeddings_create(EMBED, ["x"]).vectors
        bad = GenAPIClient(GenAPIConfig(base_url=srv.base_url, api_key="wrong", max_retries=0))
        with pytest.raises(AuthenticationError) as info:
            bad.models_list()
        assert info.value.status == 401 and "wrong" not in str(info.value)
        good.close()
        bad.close()


def test_config_from_env():
    cfg = GenAPIConfig.from_env({"SCW_SECRET_KEY": "k", "SCW_PROJECT_ID": "p-1"})
    assert cfg.base_url == "https://api.scaleway.ai/p-1/v1" and cfg.api_key == "k"
    assert "k" not in repr(cfg).replace("api_key", "")
    cfg = GenAPIConfig.from_env(
        {
            "SCW_PROJECT_ID": "p-1",
            "GENAPI_BASE_URL": "http://localhost:9/v1/",
            "GENAPI_RPM": "60",
            "GENAPI_EMBED_TOKEN_BUDGET": "",
        }
    )
    # Empty budget: half a second of the default 1,000,000 tokens/min per embeddings call.
    assert cfg.base_url == "http://localhost:9/v1" and cfg.rpm == 60 and cfg.embed_token_budget == 8_333
    assert (cfg.connect_timeout, cfg.read_timeout, cfg.max_retries, cfg.tpm, cfg.concurrency) == (
        5,
        120,
        5,
        1_000_000,
        50,
    )
    assert GenAPIConfig.from_env({}).base_url == "https://api.scaleway.ai/v1"
    with pytest.raises(ValueError):
        GenAPIConfig.from_env({"GENAPI_RPM": "lots"})


def test_get_client_is_cached_and_resettable(monkeypatch, standin):
    monkeypatch.setenv("GENAPI_BASE_URL", standin.base_url)
    reset_client()
    first = get_client()
    assert get_client() is first and first.config.base_url == standin.base_url
    reset_client()
    assert get_client() is not first
    reset_client()


def test_pool_is_rebuilt_after_fork(client, monkeypatch):
    client.models_list()
    http_before, _ = client._state()
    import genapi.transport as mod

    monkeypatch.setattr(mod.os, "getpid", lambda: -42)
    http_after, _ = client._state()
    assert http_after is not http_before
    assert client.models_list()


def test_bad_response_on_malformed_json(client, standin):
    standin.set_knobs(malformed_rate=1.0)
    with pytest.raises(BadResponseError):
        client.models_list()


def test_contract_check_covers_every_operation(client, capture, tmp_path):
    client.models_list()
    client.embeddings_create(EMBED, ["a", "b"], dimensions=128, encoding_format="base64")
    client.rerank("q", ["a"], model="bge-reranker-v2-m3", top_n=1)
    client.chat_completions_create(model=CHAT, messages=MESSAGES, temperature=0.1, max_tokens=50)
    list(client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True))
    client.responses_create(
        model="gpt-oss-120b", input="Which ocean?", instructions=SOURCES, max_output_tokens=50
    )
    client.audio_transcriptions_create(
        make_wav(0.2), filename="a.wav", model="whisper-large-v3", temperature=0.0
    )
    src = tmp_path / "b.jsonl"
    src.write_text("")
    batch = client.batches_create(input_file_id=src.as_uri(), endpoint="/v1/embeddings")
    client.batches_get(batch["id"])
    client.batches_list(limit=5)
    client.batches_cancel(batch["id"])
    paths = {path.split("/v1/", 1)[1].split("/")[0] for _, path, _, _ in capture.requests}
    assert paths == {"models", "embeddings", "rerank", "chat", "responses", "audio", "batches"}
    assert capture.violations() == []
