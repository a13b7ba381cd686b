"""Fitting tables to a terminal: whatever the table and the width, no line is wider than the
terminal and no fixed value (id, price, market, outcome) is split."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from bmctl.cli.layout import fit, short_ids

KEYS = ["listing_id", "market", "outcome", "start_price", "final_price", "floor", "writes",
        "dip_seconds", "currency", "reason"]
MARKETS = ["fr-fr", "de-de", "en-gb", "ja-jp", "es-es"]
OUTCOMES = ["won", "kept", "skipped", "unwinnable", "interrupted", "not_started"]
PRICE = st.decimals(min_value=1, max_value=999999, places=2).map(str)


@st.composite
def tables(draw: st.DrawFn) -> list[list[str]]:
    count = draw(st.integers(min_value=1, max_value=12))
    return [[str(draw(st.uuids())), draw(st.sampled_from(MARKETS)), draw(st.sampled_from(OUTCOMES)),
             draw(PRICE), draw(PRICE), draw(st.one_of(st.just(""), PRICE)),
             str(draw(st.integers(0, 9))), draw(st.sampled_from(["", "2.1", "10.25"])),
             draw(st.sampled_from(["EUR", "GBP", "JPY"])),
             draw(st.text(alphabet="abcdefgh 0123456789.:;", max_size=90))] for _ in range(count)]


@settings(max_examples=150, deadline=None)
@given(rows=tables(), width=st.integers(min_value=60, max_value=200))
def test_no_line_wider_than_the_terminal_and_no_value_split(rows: list[list[str]], width: int) -> None:
    fitted = fit(KEYS, rows, width, title="Probes")
    assert all(len(line) <= width for line in fitted.lines), fitted.lines
    body = fitted.lines[fitted.lines.index(next(ln for ln in fitted.lines if ln.startswith("─"))) + 1:]
    ids = short_ids(rows)
    text = "\n".join(body)
    for row in rows:
        # The row's name (its short id) always shows, whole, at the start of a line.
        assert any(line.startswith(ids[row[0]]) for line in body)
        for key, value in zip(KEYS, row):
            if key in ("listing_id", "reason") or not value or key in fitted.hidden:
                continue
            assert value in text, (key, value, fitted.lines)
    shown = [k for k in KEYS if k not in fitted.hidden]
    assert shown[0] == "listing_id" and ("outcome" in shown or width < 70)


def test_short_ids_grow_until_unique() -> None:
    first = uuid.UUID("12345678-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
    second = uuid.UUID("12345678-abbb-4bbb-8bbb-bbbbbbbbbbbb")
    ids = short_ids([[str(first)], [str(second)], [str(first)]])
    assert ids == {str(first): "12345678aa", str(second): "12345678ab"}


def test_free_text_goes_last_and_wraps_between_words() -> None:
    rows = [["a1b2c3d4-0000-4000-8000-000000000000", "no floor: the listing has no min_price; give --floor",
             "fr-fr", "skipped"]]
    fitted = fit(["listing_id", "reason", "market", "outcome"], rows, 50)
    header = fitted.lines[0].split()
    assert header == ["listing_id", "market", "outcome", "reason"]
    assert all(len(line) <= 50 for line in fitted.lines)
    reason_lines = [line[len(fitted.lines[1].rsplit("  ", 1)[0]) + 2:].strip() for line in fitted.lines[2:]]
    assert " ".join(reason_lines) == rows[0][1]


def test_narrow_terminal_drops_low_value_columns_first_and_says_which() -> None:
    rows = [[str(uuid.UUID(int=7)), "fr-fr", "won", "383.88", "396.38", "326.57", "1", "10.25",
             "EUR", "winning at 396.38 EUR"]]
    fitted = fit(KEYS, rows, 80)
    assert fitted.hidden[:2] == ["dip_seconds", "writes"]
    assert "final_price" not in fitted.hidden and "outcome" not in fitted.hidden
    assert "reason" in fitted.lines[0] or "reason" in fitted.lines[1]


def test_wide_shows_everything_whatever_the_width() -> None:
    rows = [[str(uuid.UUID(int=7)), "fr-fr", "won", "383.88", "396.38", "326.57", "1", "10.25",
             "EUR", "winning at 396.38 EUR " * 3]]
    fitted = fit(KEYS, rows, 80, wide=True)
    assert not fitted.hidden and str(uuid.UUID(int=7)) in fitted.lines[2]
    assert len(fitted.lines[2]) > 80


def test_long_headers_wrap_at_underscores_never_inside_a_word() -> None:
    fitted = fit(["listing_id", "queue_wait_ms", "reason"], [["x", "1.5", "r" * 60]], 40)
    rule = next(i for i, line in enumerate(fitted.lines) if line.startswith("─"))
    words = " ".join(fitted.lines[:rule]).split()
    allowed = ("listing_id", "queue_", "wait_ms", "queue_wait_", "ms", "queue_wait_ms", "reason")
    assert all(w in allowed for w in words), fitted.lines[:rule]
