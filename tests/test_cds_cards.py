"""Card Markdown: jakinib's own text keeps its characters but can open no link, image, code span, tag or entity;
EHR text is escaped completely. Properties over arbitrary text (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jakinib.web.cds_cards import escape_markdown, markdown, one_line

TEXT = st.text(alphabet=st.sampled_from(list("ab x9<>&#;[]()!`\\*_/:?\n\t\x00\x1f\x7f\u00e9")), max_size=40)


def _unescape(out: str) -> tuple[str, list[bool]]:
    """The text under the backslash escapes, and for each of its characters whether it was escaped."""
    chars, escaped, i = [], [], 0
    while i < len(out):
        if out[i] == "\\" and i + 1 < len(out):
            chars.append(out[i + 1])
            escaped.append(True)
            i += 2
        else:
            chars.append(out[i])
            escaped.append(False)
            i += 1
    return "".join(chars), escaped


@settings(max_examples=1000)  # a pure function: cheap, and a missed character is rare in short texts
@given(text=TEXT)
def test_own_text_keeps_its_characters_and_every_active_one_is_escaped(text):
    plain, escaped = _unescape(markdown(text))
    assert plain == one_line(text)
    for i, c in enumerate(plain):
        after = plain[i + 1: i + 2]
        active = c in "[]`\\" or (c == "<" and after and ((after.isascii() and after.isalpha()) or after in "/!?")) \
            or (c == "&" and after and (after == "#" or (after.isascii() and after.isalpha())))
        if active:
            assert escaped[i], (text, i)


@settings(max_examples=300)
@given(text=TEXT, ehr=TEXT.filter(lambda t: one_line(t) != ""))
def test_ehr_text_inside_own_text_is_escaped_completely(text, ehr):
    word = one_line(ehr)
    plain, escaped = _unescape(markdown(f"{text} {word} {text}", [ehr]))
    assert plain == one_line(f"{text} {word} {text}")
    start = plain.index(word)
    assert all(escaped[start + k] for k, c in enumerate(word) if not c.isalnum() and not c.isspace() and c.isascii())
    assert _unescape(escape_markdown(ehr))[0] == word
