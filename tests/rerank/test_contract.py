"""The reranker contract without a model: ordering, reply checks, input checks, specs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obembed.errors import ConfigError, InvalidInputError, ProviderResponseError, UnknownProviderError
from obembed.providers.rerank import (
    Reranker,
    RerankResult,
    check_indexed_scores,
    load_reranker,
    order,
    parse_rerank_spec,
)


class Counting(Reranker):
    """A reranker whose scores are a numpy function of the texts (document length mod 5), counting calls."""

    name = "counting"

    def __init__(self, model: str = "m", **kw: object) -> None:
        super().__init__(model)
        self.calls = 0

    def score_many(self, query: str, documents: Sequence[str]) -> RerankResult:
        self.calls += 1
        return RerankResult(np.array([len(d) % 5 for d in documents], dtype=np.float64))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 3).map(float), max_size=30), st.none() | st.integers(0, 40))
def test_order_is_a_stable_descending_permutation(scores: list[float], top_n: int | None) -> None:
    hits = order(scores, top_n)
    brute = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:top_n]
    assert [h.index for h in hits] == brute
    assert [h.score for h in hits] == [scores[i] for i in brute]


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(1, 25))
def test_reply_checks_accept_any_permutation_and_refuse_every_corruption(data: st.DataObject, n: int) -> None:
    scores = data.draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=n, max_size=n))
    perm = data.draw(st.permutations(range(n)))
    pairs = [(i, scores[i]) for i in perm]
    np.testing.assert_array_equal(check_indexed_scores(pairs, n, who="w", where="request r1"), scores)
    corruption = data.draw(st.sampled_from(["drop", "dup", "out", "neg", "bool", "str", "nan", "inf", "none"]))
    bad = list(pairs)
    k = data.draw(st.integers(0, n - 1))
    if corruption == "drop":
        bad.pop(k)
    elif corruption == "dup":
        bad.append(bad[k])
    elif corruption == "out":
        bad[k] = (n + data.draw(st.integers(0, 5)), bad[k][1])
    elif corruption == "neg":
        bad[k] = (-1, bad[k][1])
    elif corruption == "bool":
        bad[k] = (True, bad[k][1])
    elif corruption == "str":
        bad[k] = (str(bad[k][0]), bad[k][1])
    elif corruption == "nan":
        bad[k] = (bad[k][0], float("nan"))
    elif corruption == "inf":
        bad[k] = (bad[k][0], float("-inf"))
    else:
        bad[k] = (bad[k][0], None)
    with pytest.raises(ProviderResponseError, match="request r1"):
        check_indexed_scores(bad, n, who="w", where="request r1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), st.none(), st.integers(), st.binary(max_size=3)), max_size=8))
def test_bad_documents_are_refused_by_index_before_any_call(docs: list[object]) -> None:
    rr = Counting()
    bad = [i for i, d in enumerate(docs) if not isinstance(d, str) or not d.strip()]
    if bad:
        with pytest.raises(InvalidInputError) as info:
            rr.rerank("query", docs)  # type: ignore[arg-type]
        assert info.value.index == bad[0]
        assert f"document {bad[0]}" in str(info.value)
        assert rr.calls == 0
    else:
        hits = rr.rerank("query", docs)  # type: ignore[arg-type]
        assert sorted(h.index for h in hits) == list(range(len(docs)))
        assert rr.calls == (1 if docs else 0)


@pytest.mark.parametrize("query", ["", "   ", None, 3, ["q"]])
def test_bad_query_is_refused(query: object) -> None:
    with pytest.raises(InvalidInputError, match="query"):
        Counting().rerank(query, ["a"])  # type: ignore[arg-type]


def test_single_string_is_not_a_document_list() -> None:
    with pytest.raises(InvalidInputError, match="single string"):
        Counting().rerank("q", "abc")


def test_empty_list_calls_nothing() -> None:
    rr = Counting()
    assert rr.rerank("q", []) == []
    assert rr.calls == 0


def test_wrong_count_or_nan_from_a_backend_is_an_error() -> None:
    class Short(Counting):
        def score_many(self, query: str, documents: Sequence[str]) -> RerankResult:
            return RerankResult(np.zeros(len(documents) - 1))

    class Nan(Counting):
        def score_many(self, query: str, documents: Sequence[str]) -> RerankResult:
            return RerankResult(np.full(len(documents), np.nan))

    with pytest.raises(ProviderResponseError, match="1 scores for 2 documents"):
        Short().rerank("q", ["a", "b"])
    with pytest.raises(ProviderResponseError, match="NaN"):
        Nan().rerank("q", ["a", "b"])


@pytest.mark.parametrize("top_n", [-1, 1.5, True, "3"])
def test_bad_top_n(top_n: object) -> None:
    with pytest.raises(ConfigError, match="top_n"):
        Counting().rerank("q", ["a"], top_n=top_n)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- specs
@pytest.mark.parametrize(("spec", "backend", "model"), [
    ("cross-encoder:./my-reranker", "cross-encoder", "./my-reranker"),
    ("./my-reranker", "cross-encoder", "./my-reranker"),
    ("BAAI/bge-reranker-v2-m3", "cross-encoder", "BAAI/bge-reranker-v2-m3"),
    ("ce:BAAI/bge-reranker-base", "cross-encoder", "BAAI/bge-reranker-base"),
    ("st:BAAI/bge-reranker-base", "cross-encoder", "BAAI/bge-reranker-base"),
    ("dashscope:gte-rerank-v2", "dashscope-rerank", "gte-rerank-v2"),
    ("tei:BAAI/bge-reranker-base?raw_scores=true", "tei", "BAAI/bge-reranker-base"),
])
def test_spec_parsing(spec: str, backend: str, model: str) -> None:
    parsed = parse_rerank_spec(spec)
    assert (parsed.backend, parsed.model) == (backend, model)


def test_unknown_backend_and_option() -> None:
    with pytest.raises(UnknownProviderError, match="cross-encoder"):
        load_reranker("nope:m")
    with pytest.raises(ConfigError, match=r"known options: .*max_documents"):
        load_reranker("tei:m?max_docs=3")
    with pytest.raises(ConfigError, match="base_url"):
        load_reranker("rerank-api:m")
    with pytest.raises(ConfigError, match="max_documents='many' must be a positive integer"):
        load_reranker("tei:m?max_documents=many")
    with pytest.raises(ConfigError, match="runtime"):
        load_reranker("cross-encoder:x?runtime=gpu")
    with pytest.raises(ConfigError, match="empty"):
        load_reranker("")


def test_reranker_objects_pass_through() -> None:
    rr = Counting()
    assert load_reranker(rr) is rr


def test_models_command_lists_the_rerankers() -> None:
    import json

    from click.testing import CliRunner

    from obembed.cli import main

    res = CliRunner().invoke(main, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rerankers = json.loads(res.stdout)["rerankers"]
    assert {"cross-encoder", "dashscope-rerank", "rerank-api", "cohere", "jina", "siliconflow", "infinity",
            "tei"} <= set(rerankers)
