"""The UDP stream's accounting: lost packets, holes and silences."""

from lab.udp_stream import summarize


def test_a_hole_in_the_middle_is_the_gap():
    got = [(s, s * 1.0) for s in range(100) if not 40 <= s < 47]
    out = summarize(got, 100, rate=1000)
    assert out["lost"] == 7 and out["longest_hole"] == 7 and out["gap_ms"] == 7.0
    assert out["longest_silence_ms"] == 8.0


def test_a_lost_tail_and_duplicates_count():
    got = [(s, float(s)) for s in range(90)] + [(5, 95.0)]
    out = summarize(got, 100, rate=500)
    assert out["lost"] == 10 and out["duplicates"] == 1
    assert out["longest_hole"] == 10 and out["gap_ms"] == 20.0


def test_nothing_received():
    assert summarize([], 0, rate=1000)["received"] == 0
