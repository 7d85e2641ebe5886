"""The strict JSON reader: what json.loads lets through and a safety tool must refuse."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jakinib.errors import InputError
from jakinib.jsonio import MAX_DEPTH, loads_strict, read_json, read_limited

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_valid_json_reads_as_json_loads_does(value):
    text = json.dumps(value)
    assert loads_strict(text) == json.loads(text)
    assert loads_strict(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text, fragment", [
    ('{"labs": {"platelets": 20, "platelets": 300}}', "duplicate key 'platelets' in labs"),
    ('{"a": 1, "a": 1}', "duplicate key 'a' in the top level"),
    ('{"entry": [{"resource": {}}, {"resource": {"id": 1, "id": 2}}]}', "duplicate key 'id' in entry[1].resource"),
    ('"\\ud800"', "lone UTF-16 surrogate"),
    ('{"name": ["ok", "x\\udfffy"]}', "surrogate (\\ud800-\\udfff) in name[1]"),
    ("[" * 5000 + "]" * 5000, f"nested deeper than {MAX_DEPTH} levels"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ("[1e999]", "out of range"),
    ("1" * 5000, "malformed JSON"),
    ('{"age": 40,', "malformed JSON at line 1 column 12"),
    ("", "malformed JSON at line 1 column 1"),
])
def test_refused_with_one_line(text, fragment):
    with pytest.raises(InputError) as info:
        loads_strict(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data, fragment", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0x89 at offset 0)"),
    ('{"age": 40}'.encode("utf-16"), "looks like UTF-16"),
    ('{"age": 40}'.encode("utf-16-le"), "looks like UTF-16"),
    (b'{"a": "\x00"}', "NUL byte"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8 text"),  # a surrogate encoded as UTF-8 bytes
])
def test_bytes_that_are_not_utf8_json(data, fragment):
    with pytest.raises(InputError) as info:
        loads_strict(data)
    assert fragment in str(info.value)


def test_depth_limit_counts_only_structure():
    assert loads_strict('["[[[[[[[[", "\\\\", "\\"{{{{"]', max_depth=1) == ["[[[[[[[[", "\\", '"{{{{']
    assert loads_strict("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(InputError, match="nested deeper"):
        loads_strict("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_utf8_bom_is_tolerated():
    assert loads_strict(b'\xef\xbb\xbf{"age": 40}') == {"age": 40}


def test_read_limited_stops_at_the_limit(tmp_path):
    with pytest.raises(InputError, match="larger than"):
        read_limited("/dev/zero", limit=1024 * 1024)
    big = tmp_path / "big.json"
    big.write_text(json.dumps(["a"] * 1000))
    with pytest.raises(InputError, match=r"big\.json: larger than"):
        read_json(big, limit=1000)
    assert read_json(big) == ["a"] * 1000
    with pytest.raises(InputError, match="cannot read"):
        read_json(tmp_path / "missing.json")
    with pytest.raises(InputError, match="cannot read"):
        read_json(tmp_path)
