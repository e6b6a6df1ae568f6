"""Token-aware chunking: sentences and lines packed into chunks that fit the model, with overlap.

* Token counts come from the provider (its own tokenizer when it has one, a conservative estimate
  otherwise), so a chunk never exceeds the model's ``max_input_tokens``.
* Units are sentences and paragraphs: English/Latin text splits after ``. ! ?`` + whitespace, Japanese and
  Chinese after ``。！？`` with no space needed, every text at blank lines. A unit too long for one chunk is
  cut at a line break (hard-wrapped text), else at whitespace, else, for text without spaces (CJK), between
  characters, never inside one (combining marks stay with their base character). Single line breaks are
  not sentence ends: hard-wrapped Japanese ("アク\nセス") is not cut mid-word when a sentence fits.
* Markdown: headings are tracked (fenced code excluded) and the heading path ("Guide > Install") is
  prefixed to every chunk of its section, as context for the embedding and the reader.
* Streaming: :meth:`Chunker.chunk_stream` takes an iterator of text blocks (a file read piecewise), so a
  50 MB file is chunked in bounded memory.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["Chunk", "Chunker", "fast_estimate_tokens", "markdown_sections", "split_units"]

log = logging.getLogger(__name__)

TokenCounter = Callable[[Sequence[str]], list[int]]

# A unit ends after sentence punctuation (+ following spaces), after CJK sentence punctuation
# (+ closing quotes/brackets), or at a line break.
_UNIT_END = re.compile(
    r"[.!?]+[\"')\]]*(?:[ \t]+|\r?\n)[ \t\r\n]*"  # Latin sentence end, then whitespace
    r"|[。！？．｡]+[」』）)\"”’]*[ \t　\r\n]*"    # CJK sentence end (no space needed)
    r"|\r?\n[ \t]*(?:\r?\n[ \t]*)+"                # a blank line (paragraph break)
)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


def fast_estimate_tokens(text: str) -> int:
    """The conservative estimate of :func:`obembed.providers.base.estimate_tokens`, computed in C.

    ASCII costs 1 token per 3 characters, any other character 1.5 tokens, plus 2 special tokens.
    """
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - ascii_chars
    return -(-(ascii_chars * 2 + other * 9) // 6) + 2


def estimate_counter(texts: Sequence[str]) -> list[int]:
    return [fast_estimate_tokens(t) for t in texts]


def split_units(text: str) -> list[str]:
    """Split into sentence/line units, each keeping its trailing punctuation and whitespace.

    ``"".join(split_units(t)) == t`` always holds (nothing is lost or reordered).
    """
    units: list[str] = []
    start = 0
    for m in _UNIT_END.finditer(text):
        end = m.end()
        if end > start:
            units.append(text[start:end])
            start = end
    if start < len(text):
        units.append(text[start:])
    return units


def _safe_cut(text: str, pos: int) -> int:
    """Move ``pos`` back so the cut never separates a character from its combining marks / joiners."""
    while 0 < pos < len(text) and (unicodedata.combining(text[pos]) or text[pos] in "\u200d\ufe0f\ufe0e"
                                   or text[pos - 1] == "\u200d"):
        pos -= 1
    return pos


@dataclass
class Chunk:
    """One piece of a document, ready to embed."""

    text: str
    """What is embedded and stored (the heading path prefixed, for Markdown)."""
    index: int
    """Position within its document, from 0."""
    n_tokens: int | None
    """Its token count; None where nothing needed it (the ``truncate`` policy: the model's own cut applies)."""
    heading: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunker:
    """Packs text units into chunks of at most ``max_tokens`` tokens with ``overlap`` tokens of overlap.

    ``count`` maps texts to token counts *including* the model's special tokens (``provider.count_tokens``);
    without one, a conservative estimate is used.
    """

    max_tokens: int = 256
    overlap: int = 32
    count: TokenCounter | None = None
    count_batch: int = 1024

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ConfigError(f"max_tokens={self.max_tokens} is too small; use at least 8")
        if self.overlap < 0 or self.overlap >= self.max_tokens // 2:
            raise ConfigError(f"overlap={self.overlap} must be >= 0 and below half of max_tokens ({self.max_tokens})")
        self._count = self.count or estimate_counter
        self._special = self._count([""])[0]

    # ------------------------------------------------------------------ token accounting
    def tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text *without* the special tokens (what it adds to a chunk)."""
        return [max(0, c - self._special) for c in self._count(list(texts))]

    def fits(self, text: str) -> bool:
        return self._count([text])[0] <= self.max_tokens

    # ------------------------------------------------------------------ public API
    def chunk_text(self, text: str, *, heading: str = "", start_index: int = 0) -> list[Chunk]:
        """Chunk one text (a section of a document) in memory."""
        return list(self.chunk_stream([text], heading=heading, start_index=start_index))

    def chunk_markdown(self, text: str) -> list[Chunk]:
        """Chunk Markdown section by section, the heading path prefixed to each chunk."""
        out: list[Chunk] = []
        for heading, body in markdown_sections(text):
            out.extend(self.chunk_stream([body], heading=heading, start_index=len(out)))
        return out

    def chunk_stream(self, blocks: Iterable[str], *, heading: str = "", start_index: int = 0) -> Iterator[Chunk]:
        """Chunk a stream of text blocks (e.g. a file read 1 MiB at a time) in bounded memory."""
        prefix = f"{heading}\n" if heading else ""
        budget = self.max_tokens - self._special - (self.tokens([prefix])[0] if prefix else 0)
        if budget < 8:  # an absurdly long heading: drop it rather than starve the text
            prefix, budget = "", self.max_tokens - self._special
        index = start_index
        for text, _n in self._pack(self._units_with_tokens(blocks, budget), budget):
            body = text.strip()
            if not body:
                continue
            chunk_text = prefix + body
            # sums of unit counts are an approximation of the count of their concatenation: verify
            real = self._count([chunk_text])[0]
            if real > self.max_tokens:
                for piece in self._hard_split(body, budget):
                    yield Chunk(prefix + piece, index, self._count([prefix + piece])[0], heading)
                    index += 1
                continue
            yield Chunk(chunk_text, index, real, heading)
            index += 1

    # ------------------------------------------------------------------ internals
    def _units_with_tokens(self, blocks: Iterable[str], budget: int) -> Iterator[tuple[str, int]]:
        """Units with their token counts, counted in batches; units over ``budget`` are cut first."""
        pending: list[str] = []
        carry = ""
        for block in blocks:
            units = split_units(carry + block)
            # the last unit may continue in the next block: re-split it with that block
            carry = units.pop() if units else ""
            if len(carry) > 1_000_000:  # a huge run without any break: flush it anyway
                units.append(carry)
                carry = ""
            pending.extend(units)
            if len(pending) >= self.count_batch:
                yield from self._counted(pending, budget)
                pending = []
        if carry:
            pending.append(carry)
        if pending:
            yield from self._counted(pending, budget)

    def _counted(self, units: list[str], budget: int) -> Iterator[tuple[str, int]]:
        for u, n in zip(units, self.tokens(units), strict=True):
            if n > budget:
                for piece in self._hard_split(u, budget):
                    yield piece, self.tokens([piece])[0]
            else:
                yield u, n

    def _hard_split(self, text: str, budget: int) -> list[str]:
        """Cut a unit with no usable break into pieces of at most ``budget`` tokens."""
        if self.tokens([text])[0] <= budget or len(text) <= 1:
            return [text]
        mid = len(text) // 2
        before, after = text.rfind("\n", 0, mid + 1), text.find("\n", mid)  # a line break near the middle first
        nl = min((c for c in (before, after) if c >= 0), key=lambda c: abs(c - mid), default=-1)
        if len(text) // 4 < nl < len(text) * 3 // 4:
            return self._hard_split(text[:nl + 1], budget) + self._hard_split(text[nl + 1:], budget)
        space = text.rfind(" ", 0, mid + 1)
        if space > len(text) // 4:
            cut = space + 1
        else:
            space = text.find(" ", mid)
            cut = space + 1 if 0 < space < len(text) * 3 // 4 else _safe_cut(text, mid)
        if cut <= 0 or cut >= len(text):
            cut = _safe_cut(text, mid) or mid
        return self._hard_split(text[:cut], budget) + self._hard_split(text[cut:], budget)

    def _pack(self, units: Iterator[tuple[str, int]], budget: int) -> Iterator[tuple[str, int]]:
        """Greedy packing with overlap (the tail units of a chunk, ≤ ``overlap`` tokens, start the next), then
        the last two chunks rebalanced so a document never ends in a tiny leftover chunk."""
        prev: tuple[list[tuple[str, int]], int] | None = None
        for units_, n_overlap in self._greedy(units, budget):
            if prev is not None:
                fresh = sum(n for _, n in units_[n_overlap:])
                if fresh >= budget // 3:
                    yield self._join(prev[0])
                else:  # a small last piece: split the two chunks' units evenly instead
                    yield from self._rebalance(prev[0] + units_[n_overlap:], budget)
                    prev = None
                    continue
            prev = (units_, n_overlap)
        if prev is not None:
            yield self._join(prev[0])

    @staticmethod
    def _join(units: list[tuple[str, int]]) -> tuple[str, int]:
        return "".join(x for x, _ in units), sum(n for _, n in units)

    def _rebalance(self, units: list[tuple[str, int]], budget: int) -> Iterator[tuple[str, int]]:
        total = sum(n for _, n in units)
        best_k, best = 0, None
        left = 0
        for k in range(1, len(units)):
            left += units[k - 1][1]
            worst = max(left, total - left)
            if worst <= budget and (best is None or worst < best):
                best_k, best = k, worst
        if best is None:  # cannot happen (the greedy split fits); keep the greedy result
            yield self._join(units)
            return
        first, second = units[:best_k], units[best_k:]
        tail: list[tuple[str, int]] = []
        t = 0
        rest = sum(n for _, n in second)
        for x, m in reversed(first):
            if t + m > self.overlap or t + m + rest > budget:
                break
            tail.append((x, m))
            t += m
        yield self._join(first)
        yield self._join(list(reversed(tail)) + second)

    def _greedy(self, units: Iterator[tuple[str, int]], budget: int
                ) -> Iterator[tuple[list[tuple[str, int]], int]]:
        """``(units, how many leading units are overlap)`` per chunk."""
        cur: list[tuple[str, int]] = []
        n_overlap = 0
        total = 0
        fresh = False  # whether cur holds units not yet emitted
        for u, n in units:
            if cur and total + n > budget:
                if fresh:
                    yield cur, n_overlap
                # keep the overlap tail
                tail: list[tuple[str, int]] = []
                t = 0
                for x, m in reversed(cur):
                    if t + m > self.overlap or t + m + n > budget:
                        break
                    tail.append((x, m))
                    t += m
                cur = list(reversed(tail))
                n_overlap = len(cur)
                total = t
                fresh = False
            cur.append((u, n))
            total += n
            if u.strip():
                fresh = True
        if cur and fresh:
            yield cur, n_overlap


def markdown_sections(text: str) -> list[tuple[str, str]]:
    """``[(heading path, body)]``: the path joins the enclosing headings with `` > ``; code fences respected."""
    sections: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        if any(line.strip() for line in body):
            sections.append((" > ".join(h for _, h in stack), "".join(body)))
        body.clear()

    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
            body.append(line)
            continue
        m = None if in_fence else _HEADING.match(line.rstrip("\r\n"))
        if m:
            flush()
            level = len(m.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, m.group(2).strip()))
            continue
        body.append(line)
    flush()
    if not sections and stack:  # headings only: keep them as the text
        sections.append(("", " > ".join(h for _, h in stack)))
    return sections
