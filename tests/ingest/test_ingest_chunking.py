"""Chunker: CJK sentence splitting, Markdown headings, overlap, token limits (estimate and the real tokenizer)."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest

from obembed.errors import ConfigError
from obembed.ingest.chunking import Chunker, fast_estimate_tokens, markdown_sections, split_units
from obembed.providers.base import estimate_tokens


def test_split_units_loses_nothing_and_splits_cjk_without_spaces():
    text = "Hello world. Second one!  Third?\nline two\nこれは文です。二つ目！三つ目？「引用。」終わり"
    units = split_units(text)
    assert "".join(units) == text
    assert "Third?\n" in units
    assert "line two\nこれは文です。" in units  # a single line break is not a sentence end
    assert "二つ目！" in units
    assert "三つ目？" in units
    assert "「引用。」" in units  # the closing bracket stays with its sentence
    assert "Hello world. " in units
    # "3.14" and "e.g.x" are not sentence ends (no space after the dot)
    assert split_units("pi is 3.14 here") == ["pi is 3.14 here"]
    assert split_units("para one\n\npara two") == ["para one\n\n", "para two"]
    assert split_units("ア\nクセスできます。次") == ["ア\nクセスできます。", "次"]  # hard-wrapped Japanese


def test_fast_estimate_matches_the_provider_estimate():
    for t in ["", "abc", "hello world, a longer ASCII sentence.", "日本語のテキスト", "mixed 日本 text ✓"]:
        assert fast_estimate_tokens(t) == estimate_tokens(t)


def test_japanese_chunks_split_at_sentence_ends_never_mid_character():
    sentences = [f"これは{i}番目の文で、データベースの話をしています。" for i in range(40)]
    text = "".join(sentences)  # no spaces, no line breaks
    ch = Chunker(max_tokens=120, overlap=0)
    chunks = ch.chunk_text(text)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.endswith("。")  # every chunk ends at a sentence end
        assert fast_estimate_tokens(c.text) <= 120
    assert "".join(c.text for c in chunks) == text  # no overlap: the chunks tile the text exactly


def test_cjk_run_without_punctuation_is_cut_between_characters():
    text = "データ" * 400 + "が\u3099"  # ends with a base + combining voiced mark
    ch = Chunker(max_tokens=64, overlap=0)
    chunks = ch.chunk_text(text)
    assert len(chunks) > 5
    assert "".join(c.text for c in chunks) == text
    for c in chunks:
        assert fast_estimate_tokens(c.text) <= 64
        assert c.text[0] != "\u3099"  # a combining mark never starts a chunk


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(30)]
    ch = Chunker(max_tokens=60, overlap=16)
    chunks = ch.chunk_text(" ".join(sentences))
    assert len(chunks) >= 4
    for a, b in itertools.pairwise(chunks):
        last_sentence_of_a = a.text.split(". ")[-1].rstrip(".")
        assert b.text.startswith(last_sentence_of_a)  # the overlap: b begins with a's last sentence
    no_overlap = Chunker(max_tokens=60, overlap=0).chunk_text(" ".join(sentences))
    assert len(no_overlap) < len(chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_markdown_headings_are_context_and_fences_are_not_headings():
    md = ("# Guide\nIntro.\n\n## Install\nRun `pip install obembed`.\n```bash\n# a comment, not a heading\n```\n"
          "### From source\nClone it.\n## Use\nSearch.\n")
    secs = markdown_sections(md)
    assert [h for h, _ in secs] == ["Guide", "Guide > Install", "Guide > Install > From source", "Guide > Use"]
    assert "# a comment, not a heading" in secs[1][1]
    chunks = Chunker(max_tokens=64, overlap=0).chunk_markdown(md)
    assert chunks[2].text == "Guide > Install > From source\nClone it."
    assert chunks[2].heading == "Guide > Install > From source"
    assert [c.index for c in chunks] == [0, 1, 2, 3]


def test_long_markdown_section_keeps_its_heading_on_every_chunk():
    body = " ".join(f"Word{i} is here." for i in range(200))
    chunks = Chunker(max_tokens=50, overlap=8).chunk_markdown(f"# Top\n## Deep section\n{body}\n")
    assert len(chunks) > 5
    assert all(c.text.startswith("Top > Deep section\n") for c in chunks)
    assert all(fast_estimate_tokens(c.text) <= 50 for c in chunks)


def test_chunks_fit_the_real_tokenizer_limit(minilm):
    """With MiniLM's own tokenizer every chunk fits its 256 tokens (special tokens included)."""
    count = minilm.count_tokens
    text = ("OceanBase stores vectors beside relational data; approximate search uses HNSW. " * 60
            + "日本語の説明文がここに続きます。" * 60 + "\n" + "x" * 3000)
    ch = Chunker(max_tokens=minilm.max_input_tokens, overlap=32, count=count)
    chunks = ch.chunk_text(text)
    sizes = count([c.text for c in chunks])
    assert len(chunks) >= 4
    assert max(sizes) <= minilm.max_input_tokens == 256
    assert [c.n_tokens for c in chunks] == sizes
    assert min(sizes[:-1]) > 100  # packed, not one sentence per chunk


def test_streamed_50mb_text_is_chunked_in_bounded_memory(tmp_path):
    path = tmp_path / "big.txt"
    line = "A line of a very large log file, with words and numbers 12345. Another sentence here!\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(line * (50 * 1024 * 1024 // len(line) + 1))
    assert path.stat().st_size >= 50 * 1024 * 1024

    def blocks():
        with open(path, encoding="utf-8") as f:
            while b := f.read(1 << 20):
                yield b

    ch = Chunker(max_tokens=512, overlap=0)
    tracemalloc.start()
    n = 0
    total_chars = 0
    for c in ch.chunk_stream(blocks()):
        n += 1
        total_chars += len(c.text)
        if n >= 3000:  # enough to cross many 1 MiB blocks; the whole file would only repeat this
            break
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 3000
    assert total_chars > 4 * 1024 * 1024  # several blocks were consumed
    assert peak < 24 * 1024 * 1024  # bounded by a few blocks, not the 50 MB file


def test_bad_chunker_settings_are_refused():
    with pytest.raises(ConfigError, match="overlap"):
        Chunker(max_tokens=64, overlap=40)
    with pytest.raises(ConfigError, match="max_tokens"):
        Chunker(max_tokens=4)


def test_no_tiny_leftover_chunk_at_the_end():
    """A text a little over one chunk becomes two even chunks, not a full one and a scrap."""
    lines = [f"行{i:02d}のテキストです、折り返し\n" for i in range(30)]  # wrapped lines, as in Debian descriptions
    text = "".join(lines)
    ch = Chunker(max_tokens=fast_estimate_tokens(text) * 10 // 11, overlap=0)
    chunks = ch.chunk_text(text)
    assert len(chunks) == 2
    a, b = (fast_estimate_tokens(c.text) for c in chunks)
    assert abs(a - b) <= fast_estimate_tokens(lines[0]) + 2  # even, within one line
    assert "".join(c.text + "\n" for c in chunks) == text
