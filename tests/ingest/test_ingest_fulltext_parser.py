"""The FULLTEXT parser an ingest gives a new collection (``fulltext="auto"``), on the real engine and MiniLM:
words for space-separated text, character n-grams when some text is written without spaces; an existing
collection keeps its parser, and Japanese text sent to a word-parser collection is named with the fix."""

from __future__ import annotations

import json
import logging

import pytest

from obembed.ingest import ingest

EN = ['{"id": "gimp", "text": "GNU Image Manipulation Program: edit photographs and draw images."}',
      '{"id": "pg", "text": "PostgreSQL is an object-relational SQL database server."}',
      '{"id": "vim", "text": "Vim is a highly configurable text editor."}']
JA = ['{"id": "gimp-ja", "text": "GIMP は写真の編集や画像の作成ができる画像処理プログラムです。"}']


@pytest.fixture
def english(tmp_path, put):
    return put(tmp_path / "en" / "pkgs.jsonl", "\n".join(EN) + "\n")


@pytest.fixture
def japanese(tmp_path, put):
    return put(tmp_path / "ja" / "pkgs.jsonl", "\n".join(EN + JA) + "\n")


def parser_of(store, name: str) -> str | None:
    return store.collection(name).metadata.get("fulltext")


def test_english_gets_words_and_full_text_finds_a_whole_word(english, store, make_collection_name, counting):
    name = make_collection_name("en")
    ingest(english, collection=name, store=store, provider=counting)
    assert parser_of(store, name) == "space"
    hits = store.collection(name, provider=counting).search("photographs", k=3, mode="fulltext")
    assert [h.metadata["id"] for h in hits] == ["gimp"]


def test_one_japanese_record_makes_ngrams_and_full_text_finds_a_word_inside_it(japanese, store,
                                                                               make_collection_name, counting):
    name = make_collection_name("ja")
    ingest(japanese, collection=name, store=store, provider=counting)
    assert parser_of(store, name) == "ngram"
    hits = store.collection(name, provider=counting).search("写真", k=3, mode="fulltext")
    assert [h.metadata["id"] for h in hits] == ["gimp-ja"]


def test_explicit_choices_are_kept(english, store, make_collection_name, counting):
    for fulltext, want in ((True, "ngram"), ("beng", "beng"), (False, None)):
        name = make_collection_name("x")
        ingest(english, collection=name, store=store, provider=counting, fulltext=fulltext)
        assert parser_of(store, name) == want


def test_an_existing_word_parser_is_kept_and_japanese_text_named(english, japanese, store, make_collection_name,
                                                                  counting, caplog):
    name = make_collection_name("keep")
    ingest(english, collection=name, store=store, provider=counting)
    with caplog.at_level(logging.WARNING, logger="obembed"):
        rep = ingest(japanese, collection=name, store=store, provider=counting)
    assert rep.chunks_embedded == 4
    assert parser_of(store, name) == "space"  # an existing collection is never changed
    warned = [r.getMessage() for r in caplog.records if "full-text parser is 'space'" in r.getMessage()]
    assert len(warned) == 1
    assert "--fulltext-parser ngram" in warned[0]


def test_cli_option_and_note(cli, english, japanese, store, store_args, make_collection_name):
    spec = ["-m", "st:all-MiniLM-L6-v2"]
    name = make_collection_name("cli")
    res = cli("ingest", str(english), "-c", name, *spec, *store_args, "--fulltext-parser", "BENG", "--json")
    assert json.loads(res.stdout)["chunks_embedded"] == 3
    assert parser_of(store, name) == "beng"
    res = cli("ingest", str(japanese), "-c", name, *spec, *store_args, "--json")
    assert "note: 1 of 4 sampled texts are written without spaces" in res.stderr
    auto = make_collection_name("cli")
    cli("ingest", str(japanese), "-c", auto, *spec, *store_args, "--json")
    assert parser_of(store, auto) == "ngram"
    res = cli("ingest", str(english), "-c", make_collection_name("cli"), *store_args, "--fulltext-parser", "words",
              ok=False)
    assert res.exit_code == 2
    assert "'words' is not one of" in res.output


def test_a_new_collection_gets_its_index_after_the_load_and_a_stopped_run_is_repaired(english, store,
                                                                                        make_collection_name, counting):
    """The FULLTEXT index of a new collection is built over the loaded rows (the engine spends a fraction of the
    CPU it needs to keep one row by row); until then it is recorded as pending and full-text search says why it
    cannot run; a run stopped before the build leaves it pending, and the next run builds it."""
    from obembed.errors import ConfigError
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor, open_collection

    name = make_collection_name("late")
    rep = ingest(english, collection=name, store=store, provider=counting)
    assert rep.fulltext_seconds > 0
    assert "full-text index built over the loaded rows" in rep.summary()
    assert rep.fulltext_beside is False  # one slice: nothing stored before it, so built after the load
    coll = store.collection(name, provider=counting)
    assert (coll.metadata["fulltext"], coll.fulltext_pending) == ("space", None)
    assert rep.to_dict()["fulltext_seconds"] > 0
    rerun = ingest(english, collection=name, store=store, provider=counting)
    assert (rerun.chunks_embedded, rerun.fulltext_seconds) == (0, 0.0)  # built once

    stopped = make_collection_name("late")
    coll = open_collection(store, stopped, counting, fulltext="space")  # created, then the run "stops"
    coll.upsert([{"id": "x", "vector": counting.embed_documents(["a photograph editor"])[0],
                  "content": "a photograph editor"}])
    assert (coll.metadata["fulltext"], coll.fulltext_pending) == (None, "space")
    with pytest.raises(ConfigError, match=r"gets its FULLTEXT index \(space\) once its first ingest .* rerun it"):
        coll.search("photograph", k=1, mode="fulltext")
    reader = store.collection(stopped, provider=counting)  # a second handle: sees the build made through `coll`
    rep = Ingestor(coll, counting, options=LoadOptions()).run([english])
    assert rep.fulltext_seconds > 0
    assert [h.id for h in reader.search("photograph", k=1, mode="fulltext")] == ["x"]
    assert store.collection(stopped).metadata["fulltext"] == "space"
    assert coll.create_fulltext_index("space") is False  # there already: nothing to do
    with pytest.raises(Exception, match="already has a FULLTEXT index with parser 'space'"):
        coll.create_fulltext_index("ngram")


def test_store_api_defer_and_build(store, make_collection_name):
    from obembed.errors import ConfigError

    name = make_collection_name("api")
    coll = store.create_collection(name, 4, fulltext="beng", defer_fulltext=True)
    assert coll.fulltext_pending == "beng"
    coll.upsert([{"id": "a", "vector": [1.0, 0.0, 0.0, 0.0], "content": "vector databases store embeddings"}])
    from obembed.store.documents import DocumentCollection

    with pytest.raises(ConfigError, match="not built yet"):
        DocumentCollection(coll).text_search("databases", k=1)
    with pytest.raises(ConfigError, match=r"not built yet.*the fulltext leg"):
        coll.search("databases", k=1, mode="hybrid", vector=[1.0, 0.0, 0.0, 0.0],
                    weights={"dense": 1, "fulltext": 1})
    # the seed: a FULLTEXT index on an always-NULL column from the start (the build after the load is cheaper)
    indexes, _ = store.execute("SELECT DISTINCT index_name FROM information_schema.statistics WHERE "
                               "table_schema = %s AND table_name = %s", (store.database, name))
    assert "ftidx_seed" in {str(r[0]) for r in indexes}
    assert "ftidx_content" not in {str(r[0]) for r in indexes}
    assert coll.create_fulltext_index() is True
    assert [h.id for h in coll.search("databases", k=1, mode="fulltext")] == ["a"]
    assert coll.upsert([{"id": "b", "vector": [0.0, 1.0, 0.0, 0.0], "content": "seed columns stay empty"}]) == 1
    assert [h.id for h in coll.search("empty", k=1, mode="fulltext")] == ["b"]
    seeds, _ = store.execute(f"SELECT COUNT(*), COUNT(`fulltext_seed`) FROM `{name}`")
    assert tuple(seeds[0]) == (2, 0)
    assert set(coll.get(["a", "b"])[0]) >= {"id", "content"}
    assert "fulltext_seed" not in coll.get(["a"])[0]  # not part of a row as the API returns it
    with pytest.raises(Exception, match="built into every collection"):
        store.create_collection(make_collection_name("api"), 4, columns={"fulltext_seed": "varchar(8)"})
    plain = store.create_collection(make_collection_name("api"), 4)
    with pytest.raises(ConfigError, match="name the full-text parser"):
        plain.create_fulltext_index()
    with pytest.raises(ConfigError, match="'words' is not supported"):
        plain.create_fulltext_index("words")
    assert plain.create_fulltext_index("space") is True
    assert store.collection(plain.name).metadata["fulltext"] == "space"


def _numbered(tmp_path, put, n: int):
    """n records, each with a word of its own (``zqa000x`` ...), so a full-text search finds each one."""
    lines = [json.dumps({"id": f"r{i:03d}", "text": f"Package {i} handles zq{chr(97 + i % 26)}{i:03d}x files" +
                         " and more" * (i % 7)}) for i in range(n)]
    return put(tmp_path / "many" / "pkgs.jsonl", "\n".join(lines) + "\n")


def test_the_index_is_built_beside_the_models_last_slice_and_indexes_every_row(tmp_path, put, store,
                                                                                make_collection_name, counting):
    """Several slices: the writer starts the build once every row but the last slice's is stored, with a model
    thread lent to it; rows stored before, during and after the build are all found by full-text search."""
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor, open_collection

    path = _numbered(tmp_path, put, 40)
    name = make_collection_name("beside")
    coll = open_collection(store, name, counting, fulltext="space")
    advisor = counting.__dict__.get("_inner").__dict__.get("_thread_advisor")
    lent_during_build: list[int] = []
    build = coll.create_fulltext_index

    def watched(parser=None):
        lent_during_build.append(advisor._lent if advisor is not None else -1)
        return build(parser)

    coll.create_fulltext_index = watched
    rep = Ingestor(coll, counting, options=LoadOptions(), write_every=8).run([str(path)])
    assert rep.chunks_embedded == 40
    assert rep.fulltext_beside is True
    assert rep.fulltext_seconds > 0
    assert "beside the model's last slice" in rep.summary()
    assert lent_during_build == [1 if advisor is not None else -1]  # one build, with a model thread lent
    if advisor is not None:
        assert advisor._lent == 0  # given back
    reader = store.collection(name, provider=counting)
    assert reader.metadata["fulltext"] == "space"
    assert reader.fulltext_pending is None
    for i in range(40):
        hits = reader.search(f"zq{chr(97 + i % 26)}{i:03d}x", k=3, mode="fulltext")
        assert [h.metadata["id"] for h in hits][:1] == [f"r{i:03d}"], i


def test_a_failed_build_beside_the_model_is_tried_again_after_the_load(tmp_path, put, store, make_collection_name,
                                                                       counting, caplog):
    from obembed.errors import StoreError
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor, open_collection

    path = _numbered(tmp_path, put, 24)
    name = make_collection_name("retry")
    coll = open_collection(store, name, counting, fulltext="space")
    build, calls = coll.create_fulltext_index, []

    def flaky(parser=None):  # the engine refusing the first build (a lock, a timeout)
        calls.append(parser)
        if len(calls) == 1:
            raise StoreError("build the FULLTEXT index: the engine refused it (4012: timeout)")
        return build(parser)

    coll.create_fulltext_index = flaky
    with caplog.at_level(logging.WARNING, logger="obembed"):
        rep = Ingestor(coll, counting, options=LoadOptions(), write_every=8).run([str(path)])
    assert len(calls) == 2
    assert rep.fulltext_beside is False
    assert rep.fulltext_seconds > 0
    assert any("trying again after the load" in r.getMessage() for r in caplog.records)
    reader = store.collection(name, provider=counting)
    assert reader.count() == 24
    assert [h.metadata["id"] for h in reader.search("zqx023x", k=1, mode="fulltext")] == ["r023"]
