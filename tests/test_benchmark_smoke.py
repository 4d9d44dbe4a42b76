"""The stream benchmark still runs end to end (tiny load; no figures are asserted)."""

from __future__ import annotations

from benchmarks import stream


def test_quick_benchmark_checks_every_frame_and_prints_the_table(capsys):
    assert stream.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "lost frames: 0" in out
    for row in ("a. TwilioStreamConsumer", "b. naive", "c. raw websockets", "a/b", "a/c"):
        assert row in out


def test_parser_benchmark_compares_the_same_results(capsys):
    from benchmarks import parsers

    assert parsers.main(["--frames", "1000"]) == 0
    assert "pydantic / ours:" in capsys.readouterr().out


def test_quick_bidirectional_profile_prints_both_costs(capsys):
    assert stream.main(["--bidirectional", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "a listening call" in out and "a call hearing audio" in out
    assert "with no underrun; every inbound frame arrived" in out
