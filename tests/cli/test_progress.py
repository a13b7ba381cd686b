"""The progress line of batch commands."""

from __future__ import annotations

import io

from bmctl.cli.env import CliEnv
from bmctl.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_total_grows_when_probes_find_more_markets_than_expected() -> None:
    """``probe --all`` over every market expects a row per market a listing was probed in
    before; a listing found in one more market adds a row: the bar never shows 5/4."""
    stderr = Terminal()
    bar = Progress(CliEnv(stderr=stderr), 2, "probing")
    for outcome in ("won", "kept", "won"):
        bar.advance(outcome)
    bar.close()
    assert bar.total == 3
    assert "3/3" in stderr.getvalue() and "3/2" not in stderr.getvalue()


def screen_lines(raw: str) -> list[str]:
    from tests.pty_helpers import Screen

    return Screen(raw, 0).lines()


def test_no_color_leaves_no_escape_sequence_in_the_progress_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")
    stderr = Terminal()
    with Progress(CliEnv(stderr=stderr, columns=80), 3, "probing") as bar:
        bar.advance("won")
    assert "\x1b" not in stderr.getvalue() and "1/3" in stderr.getvalue()
    monkeypatch.delenv("NO_COLOR")
    coloured = Terminal()
    with Progress(CliEnv(stderr=coloured, columns=80), 3, "probing") as bar:
        bar.advance("won")
    assert "\x1b[1mprobing" in coloured.getvalue()


def test_rows_and_messages_never_land_inside_the_progress_line() -> None:
    """stdout and stderr on one terminal, ndjson rows and notices while the line is shown."""
    from bmctl.cli.output import Output

    screen = Terminal()
    env = CliEnv(stdout=screen, stderr=screen, format_option="ndjson", columns=80)
    with Output(env) as out, Progress(env, 3, "probing") as bar:
        for n in range(3):
            out.emit({"listing_id": f"L{n}", "outcome": "won"})
            env.info(f"429 on competitors: pausing that bucket 10 s (row {n})")
            bar.advance("won")
    lines = screen_lines(screen.getvalue())
    rows = [line for line in lines if line.startswith("{")]
    assert len(rows) == 3 and all(line.endswith("}") for line in rows)
    assert [line for line in lines if line.startswith("429")] == [
        f"429 on competitors: pausing that bucket 10 s (row {n})" for n in range(3)]
    assert lines[-1].startswith("probing") and "3/3" in lines[-1]
    assert all(len(line) <= 80 for line in lines)


def test_the_progress_line_fits_a_narrow_terminal() -> None:
    stderr = Terminal()
    with Progress(CliEnv(stderr=stderr, columns=40), 30, "probing") as bar:
        for outcome in ["won"] * 10 + ["unwinnable"] * 10 + ["interrupted"] * 5:
            bar.advance(outcome)
    assert all(len(line) < 40 for line in screen_lines(stderr.getvalue()))


def test_messages_on_a_terminal_wrap_between_words() -> None:
    stderr = Terminal()
    CliEnv(stderr=stderr, columns=40).warn("warning: " + "word " * 20)
    lines = stderr.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 40 for line in lines)
    assert " ".join(line.strip() for line in lines).split() == ["warning:"] + ["word"] * 20
    piped = io.StringIO()
    CliEnv(stderr=piped, columns=40).warn("warning: " + "word " * 20)
    assert len(piped.getvalue().splitlines()) == 1  # cron mail and logs keep one line
