"""Plain text exactly as Rich prints it when stdout is not a terminal: tables and wrapped lines, without Rich.

Rich is the CLI's renderer at a terminal (colour, the terminal's width). Written to a pipe or a file it prints no
colour and wraps at 200 columns, and then drawing a table through Rich's general machinery costs more than the rest
of ``jakinib drug NAME`` (importing Rich alone takes a tenth of the start-up). This module lays the same tables out
with Rich's own rules (column measurement, collapsing wide columns, word wrap with long words folded, centred
titles, the heavy-head box) and prints the same bytes; ``tests/test_textout.py`` holds it to Rich's output.

Anything it does not lay out itself (markup it does not know, emoji codes, tabs, line breaks inside a cell,
characters whose terminal width is not plainly one) makes :func:`table` and :func:`line` return None: the caller
then prints through Rich, so the output never differs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

WIDTH = 200
"""Rich's width when stdout is not a terminal (``Console(width=200)`` in the CLI)."""

_WORD = re.compile(r"\s*\S+\s*")
_TRAILING_SPACE = re.compile(r"\s+$")
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")
_EMOJI_NAME = re.compile(r"[A-Za-z0-9_+\-]+\Z")
STYLES = frozenset({"bold", "dim", "italic", "yellow", "bold yellow", "bold red", "bold green", "bold white on red"})
"""The styles the CLI's own markup uses; a tag naming any other is left to Rich."""


_WIDE = ((0x3000, 0x303F), (0x3041, 0x3097), (0x309B, 0x3100), (0x3400, 0x4DC0), (0x4E00, 0xA000), (0xFF01, 0xFF61),
         (0xFFE0, 0xFFE7))
"""CJK punctuation, kana, ideographs and full-width forms: two cells wide (East Asian Wide / Full-width)."""


def _char_width(ch: str) -> int | None:
    """Terminal cells ``ch`` takes as Rich counts them: 1, 2, or None where this module does not know for sure."""
    o = ord(ch)
    if (0x20 <= o < 0x7F or 0xA0 <= o < 0x300 or 0x370 <= o < 0x483 or 0x48A <= o < 0x530
            or 0x2010 <= o < 0x2028 or 0x2030 <= o < 0x205F or 0x2070 <= o < 0x20D0 or 0x2100 <= o < 0x2300):
        return 1
    for lo, hi in _WIDE:
        if lo <= o < hi:
            return 2
    return None


def _known_widths(text: str) -> bool:
    return (text.isascii() and text.isprintable()) or all(_char_width(ch) is not None for ch in text)


def cell_len(text: str) -> int:
    """Terminal cells ``text`` takes (every character of it has a known width)."""
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) or 0 for ch in text)


def _crop(text: str, width: int) -> str:
    """Rich's ``set_cell_size`` when shrinking: the longest prefix within ``width``, a space standing in for a
    two-cell character cut in half."""
    if text.isascii():
        return text[:width]
    used = 0
    for i, ch in enumerate(text):
        w = _char_width(ch) or 0
        if used + w > width:
            return text[:i] + " " * (width - used)
        used += w
    return text


def unmark(text: str) -> str | None:
    """``text`` with the CLI's own style tags removed (``[bold]x[/bold]`` -> ``x``); None when Rich is needed."""
    if "[" in text:
        out, at = [], 0
        for m in _TAG.finditer(text):
            if m.group(1):  # an escaped bracket: Rich's rules for backslashes are its own
                return None
            tag = m.group(2)
            if not (tag == "/" or tag in STYLES or (tag.startswith("/") and tag[1:] in STYLES)):
                return None
            out.append(text[at:m.start()])
            at = m.end()
        out.append(text[at:])
        text = "".join(out)
    if ":" in text and any(_EMOJI_NAME.match(m.group(2)) for m in _EMOJI.finditer(text)):
        return None  # might be an emoji code Rich replaces (it knows thousands of names)
    if "\t" in text or "\n" in text or "\r" in text or not _known_widths(text):
        return None
    return text


def _chop(word: str, width: int) -> list[str]:
    """Rich's ``chop_cells``: ``word`` cut into pieces of at most ``width`` cells."""
    lines: list[list[str]] = [[]]
    total = 0
    for ch in word:
        w = _char_width(ch) or 0
        if total + w > width:
            lines.append([ch])
            total = w
        else:
            lines[-1].append(ch)
            total += w
    return ["".join(x) for x in lines]


def _breaks(text: str, width: int) -> list[int]:
    """Where Rich's ``divide_line`` breaks ``text`` to fit ``width`` (words keep their trailing space; a word longer
    than the width is folded)."""
    breaks: list[int] = []
    offset = 0
    for m in _WORD.finditer(text):
        start, word = m.start(), m.group(0)
        length = cell_len(word.rstrip())
        if width - offset >= length:
            offset += cell_len(word)
        elif length > width:
            pieces = _chop(word, width)
            for i, piece in enumerate(pieces):
                if start:
                    breaks.append(start)
                if i == len(pieces) - 1:
                    offset = cell_len(piece)
                else:
                    start += len(piece)
        elif offset and start:
            breaks.append(start)
            offset = cell_len(word)
    return breaks


def _wrap(text: str, width: int) -> list[str]:
    """Rich's ``Text.wrap`` (overflow fold): the lines, before justification."""
    cuts = [0, *_breaks(text, width), len(text)]
    lines = []
    for a, b in itertools.pairwise(cuts):
        piece = text[a:b]
        if len(piece) > width:  # rstrip_end: trailing space past the width goes
            m = _TRAILING_SPACE.search(piece)
            if m is not None:
                piece = piece[: len(piece) - min(len(m.group(0)), len(piece) - width)]
        lines.append(_crop(piece, width) if cell_len(piece) > width else piece)
    return lines


def line(text: str, width: int = WIDTH) -> str | None:
    """What ``Console.print(text)`` writes (markup applied, wrapped at ``width``), or None when Rich is needed."""
    plain = unmark(text)
    if plain is None:
        return None
    return "\n".join(_wrap(plain, width)) + "\n"


def _measure(text: str, max_width: int) -> tuple[int, int]:
    """Rich's measurement of a table cell (the text in one-cell padding each side): (minimum, maximum) width."""
    if max_width - 2 < 1:
        return max_width, max_width
    words = text.split()
    longest_line = cell_len(text)
    lo, hi = (max(cell_len(w) for w in words) if words else longest_line), longest_line
    lo, hi = min(lo, hi), max(lo, hi)
    lo, hi = min(lo, max_width), min(hi, max_width)
    if hi < 1:
        lo, hi = 0, 0
    lo, hi = min(max(0, lo), hi), max(0, hi)
    lo, hi = min(lo + 2, max_width), min(hi + 2, max_width)
    if hi < 1:
        return 0, 0
    return min(lo, hi), hi


def _column_width(cells: Sequence[str], max_width: int) -> int:
    if max_width < 1:
        return 0
    measured = [_measure(c, max_width) for c in cells]
    hi = min(max(m[1] for m in measured), max_width)
    return hi


def _ratio_reduce(total: int, ratios: list[int], maximums: list[int], values: list[int]) -> list[int]:
    ratios = [r if m else 0 for r, m in zip(ratios, maximums, strict=True)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return values[:]
    remaining, out = total, []
    for ratio, maximum, value in zip(ratios, maximums, values, strict=True):
        if ratio and total_ratio > 0:
            given = min(maximum, round(ratio * remaining / total_ratio))
            out.append(value - given)
            remaining -= given
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def _collapse(widths: list[int], max_width: int) -> list[int]:
    total = sum(widths)
    excess = total - max_width
    while total and excess > 0:
        widest = max(widths)
        second = max((w if w != widest else 0) for w in widths)
        ratios = [1 if w == widest else 0 for w in widths]
        if not widest - second:
            break
        widths = _ratio_reduce(excess, ratios, [min(excess, widest - second)] * len(widths), widths)
        total = sum(widths)
        excess = total - max_width
    return widths


def _widths(columns: Sequence[Sequence[str]], max_width: int) -> list[int]:
    widths = [_column_width(cells, max_width) or 1 for cells in columns]
    if sum(widths) > max_width:
        widths = _collapse(widths, max_width)
        if sum(widths) > max_width:
            widths = _ratio_reduce(sum(widths) - max_width, [1] * len(widths), widths, widths)
        widths = [_column_width(cells, w) for cells, w in zip(columns, widths, strict=True)]
    return widths


def _pad(text: str, width: int) -> str:
    """Rich's ``truncate(width, pad=True)``: cropped or padded to exactly ``width`` cells."""
    size = cell_len(text)
    if size > width:
        return _crop(text, width)
    return text + " " * (width - size)


def _cell_lines(text: str, width: int) -> list[str]:
    inner = width - 2
    return [f" {_pad(piece, inner)} " for piece in _wrap(text, inner)]


def _centred(text: str, width: int) -> list[str]:
    out = []
    for piece in _wrap(text, width):
        piece = piece.rstrip()
        if cell_len(piece) > width:
            piece = _crop(piece, width)
        left = (width - cell_len(piece)) // 2
        out.append(" " * left + piece + " " * (width - cell_len(piece) - left))
    return out


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]],
          end_section: Sequence[bool] | None = None, width: int = WIDTH) -> str | None:
    """What Rich prints for ``Table(title=title)`` with these columns (overflow fold) and rows, or None when Rich is
    needed. ``end_section[i]`` draws a line under row ``i`` (never under the last)."""
    plain_title = unmark(title) if title else ""
    header = [unmark(c) for c in columns]
    body = [[unmark(c) for c in r] for r in rows]
    if plain_title is None or None in header or any(None in r for r in body) or any(len(r) != len(columns) for r in rows):
        return None
    if not columns:
        return None
    extra = len(columns) + 1
    widths = _widths([[h, *(r[i] for r in body)] for i, h in enumerate(header)], width - extra)  # type: ignore[misc]
    if min(widths) < 3:
        return None  # a column too narrow for its padding: Rich's own corner cases
    out: list[str] = []
    table_width = sum(widths) + extra
    if title:  # Rich tests the title as given: markup around nothing still draws a (blank) line
        out += _centred(plain_title, table_width)

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    def row(cells: Sequence[str], bar: str, bottom: bool = False) -> list[str]:
        rendered = [_cell_lines(c, w) for c, w in zip(cells, widths, strict=True)]
        height = max(len(r) for r in rendered)
        if bottom:  # header cells sit on the rule below them
            rendered = [[" " * w] * (height - len(r)) + r for r, w in zip(rendered, widths, strict=True)]
        return [bar + bar.join(r[i] if i < len(r) else " " * w for r, w in zip(rendered, widths, strict=True)) + bar
                for i in range(height)]

    out.append(rule("┏", "━", "┳", "┓"))
    out += row(header, "┃", bottom=True)  # type: ignore[arg-type]
    out.append(rule("┡", "━", "╇", "┩"))
    sections = list(end_section or [False] * len(body))
    for i, cells in enumerate(body):
        out += row(cells, "│")  # type: ignore[arg-type]
        if sections[i] and i < len(body) - 1:
            out.append(rule("├", "─", "┼", "┤"))
    out.append(rule("└", "─", "┴", "┘"))
    return "\n".join(out) + "\n"
