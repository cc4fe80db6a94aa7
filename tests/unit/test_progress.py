"""The progress reporter: its line, its ETA, its rate limit, TTY redraws and silence.

Every test drives a fake clock, so timings are exact and nothing sleeps.
"""

from __future__ import annotations

import io
import time

import pytest

from shadownet import progress
from shadownet.progress import Progress, duration, estimate


class Clock:
    """A monotonic clock that only moves when something sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Stream(io.StringIO):
    """A text stream that says what it encodes (StringIO says nothing)."""

    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


@pytest.fixture
def clock() -> Clock:
    return Clock()


def plain(clock: Clock, **kw) -> tuple[Progress, Stream]:
    out = Stream()
    kw.setdefault("tty", False)
    return Progress("bench", stream=out, clock=clock, sleep=clock.sleep, **kw), out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


# --- format ------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (59.9, "59s"), (60, "1m00s"), (134, "2m14s"), (3599, "59m59s"),
    (3600, "1h00m"), (3900, "1h05m"), (-3, "0s"),
])
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("seconds,text", [
    (0, "~5s"), (1, "~5s"), (41, "~45s"), (59, "~60s"), (60, "~1m"), (299, "~5m"),
    (330, "~6m"), (4800, "~1h20m"),
])
def test_estimate_is_coarse_and_never_zero(seconds, text):
    assert estimate(seconds) == text


def test_the_line_names_the_step_its_phase_elapsed_time_and_eta(clock):
    p, out = plain(clock, total=10)
    with p:
        p.step()
        clock.now += 67
        p.step()
        clock.now += 67
        p.step("seed 3")
        # 67 s a step: this one and 7 more, 536 s
        assert p.line() == "[bench] run 3/10 seed 3 · 2m14s elapsed · ~9m left"
        p.phase("warmup", 30)
        clock.now += 12
        assert p.line() == "[bench] run 3/10 seed 3 · warmup 12s/30s · 2m26s elapsed · ~9m left"
        clock.now += 60  # the step overruns its 67 s: 7 more steps left, 469 s
        assert p.line().endswith("· 3m26s elapsed · ~8m left")


def test_a_step_can_leave_its_line_to_its_first_phase(clock):
    p, out = plain(clock, total=3, unit="mode")
    p.step("predictive", show=False)
    assert out.getvalue() == ""
    p.phase("starting the lab")
    assert lines(out) == ["[bench] mode 1/3 predictive · starting the lab · 0s elapsed"]


def test_a_run_of_unknown_length_has_no_eta(clock):
    p, _ = plain(clock)
    p.step()
    clock.now += 100
    p.step()
    assert p.eta() is None
    assert p.line() == "[bench] run 2 · 1m40s elapsed"


def test_a_stream_that_cannot_encode_the_dot_gets_a_dash(clock):
    out = Stream("ascii")
    p = Progress("bench", total=2, stream=out, clock=clock, tty=False)
    p.step()
    assert lines(out) == ["[bench] run 1/2 - 0s elapsed"]


def test_the_last_line_says_how_long_it_took(clock):
    p, out = plain(clock, total=3, unit="mode")
    with p:
        p.step("predictive")
        clock.now += 65
    assert lines(out)[-1] == "[bench] done: 1 mode in 1m05s"
    p, out = plain(clock)  # no steps: a single lab run
    with p:
        p.wait(45, "pingall")
    assert lines(out)[-1] == "[bench] done in 45s"


def test_a_failed_run_leaves_its_last_status_and_adds_nothing(clock):
    """The caller's error must stay the one line a mistake prints."""
    p, out = plain(clock, total=3, unit="mode")
    with pytest.raises(KeyboardInterrupt), p:
        p.step("predictive")
        clock.now += 5
        raise KeyboardInterrupt
    assert lines(out) == ["[bench] mode 1/3 predictive · 0s elapsed"]
    p, out = plain(clock, tty=True, width=200)
    with pytest.raises(ValueError), p:
        p.phase("starting the lab")
        raise ValueError("bad --topo")
    assert out.getvalue() == "\r[bench] starting the lab · 0s elapsed\x1b[K\r\x1b[K"


# --- ETA -----------------------------------------------------------------------------------


def test_eta_appears_once_a_step_has_finished(clock):
    p, _ = plain(clock, total=10)
    p.step()
    clock.now += 30
    assert p.eta() is None  # nothing finished yet: no basis for a guess
    clock.now += 30
    p.step()  # one step took 60 s: this one and 8 more to go
    assert p.eta() == pytest.approx(540)
    clock.now += 20
    assert p.eta() == pytest.approx(520)  # counts down within the step


def test_an_overrunning_step_does_not_make_the_eta_negative(clock):
    p, _ = plain(clock, total=4)
    p.step()
    clock.now += 10
    p.step()
    clock.now += 500  # far longer than the 10 s average
    assert p.eta() == pytest.approx(20)  # the two steps after this one, at the average


def test_more_steps_than_announced_give_no_negative_eta(clock):
    p, _ = plain(clock, total=2)
    for _ in range(4):
        p.step()
        clock.now += 10
    assert p.eta() == 0


# --- rate limiting (not a TTY) --------------------------------------------------------------


def test_plain_output_is_rate_limited_but_phases_always_print(clock):
    p, out = plain(clock, total=100, interval=10.0)
    with p:
        for i in range(100):
            p.step()
            if i == 55:
                p.phase("checkpoint")  # within the interval, yet printed
            clock.now += 0.5  # 50 s in all: 200 steps per 100 s would flood a log
    got = lines(out)
    steps = [line for line in got if "checkpoint" not in line and "done" not in line]
    # The first step, then one line per 10 s (every 20th step); the phase line at step 56
    # counts as a line too, so the next one waits 10 s from there.
    assert [line.split(" · ")[0] for line in steps] == [
        "[bench] run 1/100", "[bench] run 21/100", "[bench] run 41/100", "[bench] run 76/100",
        "[bench] run 96/100"]
    assert sum("checkpoint" in line for line in got) == 1
    assert got[-1] == "[bench] done: 100 runs in 50s"


def test_a_plain_countdown_prints_every_interval_and_no_finished_line(clock):
    p, out = plain(clock, interval=10.0)
    p.wait(30, "warmup")
    assert lines(out) == [
        "[bench] warmup 0s/30s · 0s elapsed",
        "[bench] warmup 10s/30s · 10s elapsed",
        "[bench] warmup 20s/30s · 20s elapsed",
    ]
    assert clock.now == 1030.0 and max(clock.slept) <= 1.0


def test_a_wait_sleeps_exactly_its_length_with_a_fractional_end(clock):
    p, _ = plain(clock)
    p.wait(2.5, "x")
    assert clock.slept == [1.0, 1.0, 0.5]


def test_a_plain_log_is_just_the_message(clock):
    p, out = plain(clock, total=2)
    p.step()
    p.log("lab: ring,4: 4 switches")
    assert lines(out) == ["[bench] run 1/2 · 0s elapsed", "lab: ring,4: 4 switches"]


# --- a terminal ------------------------------------------------------------------------------


def test_a_tty_redraws_one_line(clock):
    p, out = plain(clock, tty=True, interval=0.5, width=200)
    p.wait(2, "warmup")
    text = out.getvalue()
    assert "\n" not in text
    assert text == ("\r[bench] warmup 0s/2s · 0s elapsed\x1b[K"
                    "\r[bench] warmup 1s/2s · 1s elapsed\x1b[K"
                    "\r[bench] warmup 2s/2s · 2s elapsed\x1b[K")


def test_a_tty_log_goes_above_the_live_line_which_is_redrawn(clock):
    p, out = plain(clock, total=3, tty=True, width=200)
    p.step()
    p.log("lab: up")
    assert out.getvalue() == ("\r[bench] run 1/3 · 0s elapsed\x1b[K"
                              "\r\x1b[K" "lab: up\n"
                              "\r[bench] run 1/3 · 0s elapsed\x1b[K")


def test_clear_takes_the_live_line_away_before_results_go_to_stdout(clock):
    p, out = plain(clock, total=3, tty=True, width=200)
    p.step()
    p.clear()
    p.clear()  # nothing left to clear: writes nothing
    assert out.getvalue().endswith("\x1b[K\r\x1b[K")
    assert out.getvalue().count("\r\x1b[K") == 1


def test_a_tty_line_is_cut_to_the_terminal_width(clock):
    p, out = plain(clock, total=3, tty=True, width=20)
    p.step("a very long detail that would wrap")
    assert out.getvalue() == "\r[bench] run 1/3 a v\x1b[K"


def test_the_tty_finish_line_ends_with_a_newline(clock):
    p, out = plain(clock, total=1, tty=True, width=200)
    with p:
        p.step()
    assert out.getvalue().endswith("\r\x1b[K[bench] done: 1 run in 0s\n")


def test_tty_detection_follows_the_stream(clock):
    class Terminal(Stream):
        def isatty(self) -> bool:
            return True

    assert Progress("x", stream=Terminal(), clock=clock).tty
    assert Progress("x", stream=Terminal(), clock=clock).interval == progress.TTY_INTERVAL
    assert not Progress("x", stream=Stream(), clock=clock).tty
    assert Progress("x", stream=Stream(), clock=clock).interval == progress.PLAIN_INTERVAL


def test_dumb_terminal_gets_plain_lines(clock, monkeypatch):
    class Terminal(Stream):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "dumb")
    assert not Progress("x", stream=Terminal(), clock=clock).tty


# --- quiet, stdout, and no reporter ---------------------------------------------------------


def test_quiet_writes_nothing_but_still_waits(clock):
    p, out = plain(clock, total=3, quiet=True)
    with p:
        p.step()
        p.phase("x")
        p.log("lab: up")
        p.wait(30, "warmup")
        p.clear()
    assert out.getvalue() == ""
    assert clock.now == 1030.0


def test_progress_goes_to_stderr_never_stdout(capsys, clock):
    with Progress("bench", total=2, clock=clock, sleep=clock.sleep) as p:
        p.step()
        p.wait(3, "warmup")
        p.log("lab: up")
    out, err = capsys.readouterr()
    assert out == ""
    assert "[bench] run 1/2" in err and "lab: up" in err and "done: 1 run" in err


def test_module_functions_report_to_the_innermost_active_reporter(clock):
    outer, out_outer = plain(clock, total=2)
    inner, out_inner = plain(clock)
    with outer:
        progress.step("a")
        with inner:
            progress.phase("inner phase")
        progress.phase("outer phase")
    assert "inner phase" in out_inner.getvalue()
    assert "inner phase" not in out_outer.getvalue()
    assert "[bench] run 1/2 a · outer phase" in out_outer.getvalue()
    assert progress.current() is not outer  # gone once its block ended


def test_with_no_reporter_the_module_functions_are_silent_and_wait_sleeps(capsys, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    progress.step("x")
    progress.phase("warmup", 30)
    progress.log("lab: up")
    progress.wait(30, "warmup")
    progress.clear()
    assert slept == [30]  # one sleep, not thirty ticks
    assert capsys.readouterr() == ("", "")
    assert progress.current().quiet


def test_a_closed_stream_does_not_fail_the_run(clock):
    out = Stream()
    p = Progress("bench", total=2, stream=out, clock=clock, tty=False)
    out.close()
    p.step()
    p.finish()
