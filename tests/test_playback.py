"""The playback module alone: lead, marks, the ledger, clear, stale marks, late audio, fillers,
and streamed utterances in parts of any size."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from voiceflow_channels.mulaw import frames_ms, padding
from voiceflow_channels.playback import END_SUFFIX, Clear, Mark, Media, Playback, Step

MS = 8  # bytes of mu-law per ms


def audio(ms: int) -> bytes:
    return b"\x10" * (ms * MS)


def marks(step: Step) -> list[str]:
    return [m.name for m in step.outbound if isinstance(m, Mark)]


def media_ms(step: Step) -> list[int]:
    return [len(m.audio) // MS for m in step.outbound if isinstance(m, Media)]


def test_never_more_than_the_lead_ahead_and_a_mark_after_every_segment():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    step = playback.play("speech", audio(1000))
    assert media_ms(step) == [100, 100, 100]
    assert [type(m) for m in step.outbound] == [Media, Mark] * 3
    assert marks(step) == ["vf1.1", "vf1.2", "vf1.3"]
    assert playback.outstanding_ms == 300


def test_each_echo_refills_the_lead_and_the_last_mark_ends_the_utterance():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    sent = marks(playback.play("speech", audio(450)))
    step = playback.on_mark(sent[0])
    assert media_ms(step) == [100]
    sent += marks(step)
    step = playback.on_mark(sent[1])
    assert media_ms(step) == [60]  # 450 ms padded to whole 20 ms frames: 460
    sent += marks(step)
    assert sent[-1] == "vf1.5.end"
    for name in sent[2:-1]:
        assert playback.on_mark(name).ended == []
    [done] = playback.on_mark(sent[-1]).ended
    assert (done.label, done.queued_ms, done.played_ms, done.cleared_ms) == ("speech", 460, 460, 0)
    assert playback.idle and playback.outstanding_ms == 0 and playback.played_ms == 460


def test_audio_is_padded_to_whole_frames_of_silence():
    playback = Playback()
    step = playback.play("speech", b"\x01" * 170)
    assert [m.audio for m in step.outbound if isinstance(m, Media)] == [
        b"\x01" * 170 + b"\xff" * 150
    ]


def sent_audio(step: Step) -> bytes:
    return b"".join(m.audio for m in step.outbound if isinstance(m, Media))


def test_a_partial_frame_waits_for_the_next_part_and_counts_as_the_frame_it_becomes():
    playback = Playback()
    first = playback.play("speech", b"\x01" * 100, key="k", final=False)
    assert first.outbound == [], "no whole frame yet: nothing is sent, nothing is padded"
    assert (playback.playing.queued_ms, playback.unsettled_ms) == (20, 20)
    second = playback.extend("k", b"\x02" * 100, final=False)
    assert sent_audio(second) == b"\x01" * 100 + b"\x02" * 60
    assert marks(second) == ["vf1.1"]
    assert playback.playing.queued_ms == 40
    last = playback.extend("k", b"", final=True)
    assert sent_audio(last) == b"\x02" * 40 + b"\xff" * 120, "only the end is padded"
    assert marks(last) == ["vf1.2.end"]
    assert playback.playing.queued_ms == 40, "the padding was counted with the partial frame"


def test_close_ends_an_open_utterance_with_what_it_has_and_the_next_one_plays():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    playback.play("speech", b"\x01" * 250, key="k", final=False)
    assert media_ms(playback.play("next", audio(100))) == [], "it waits behind the open one"
    step = playback.close("k")
    assert [m.audio for m in step.outbound if isinstance(m, Media)] == [
        b"\x01" * 90 + b"\xff" * 70,
        audio(100),
    ]
    assert marks(step) == ["vf1.2.end", "vf1.3.end"]
    assert playback.close("k") == Step(), "a closed utterance closes once"
    assert playback.extend("k", audio(20), final=True) == Step()
    assert playback.late_audio == 1
    ended = [
        u for name in ("vf1.1", "vf1.2.end", "vf1.3.end") for u in playback.on_mark(name).ended
    ]
    assert [(u.label, u.queued_ms, u.played_ms, u.cleared_ms) for u in ended] == [
        ("speech", 40, 40, 0),
        ("next", 100, 100, 0),
    ]


def test_clear_counts_an_open_utterances_partial_frame_as_cleared():
    playback = Playback()
    playback.play("speech", b"\x01" * 170, key="k", final=False)
    [done] = playback.clear().ended
    assert (done.queued_ms, done.played_ms, done.cleared_ms) == (40, 0, 40)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, 1000), st.just("echo")), max_size=30),
    st.sampled_from(["final part", "empty final part", "close"]),
)
def test_a_streamed_utterance_sends_exactly_its_parts_padded_only_at_the_end(script, ending):
    """Parts of any size, echoes between them: the bytes sent are the parts in order, whole
    frames each time, with silence only after the last part; the books balance at the end."""
    playback = Playback(lead_ms=300, mark_every_ms=100)
    wire: list[str] = []
    sent = bytearray()
    parts = bytearray()
    ended = []

    def apply(step: Step) -> None:
        for message in step.outbound:
            if isinstance(message, Media):
                assert message.audio and len(message.audio) % 160 == 0
                sent.extend(message.audio)
            elif isinstance(message, Mark):
                wire.append(message.name)
        ended.extend(step.ended)

    apply(playback.play("speech", b"", key="k", final=False))
    for n, op in enumerate(script):
        if op == "echo":
            if wire:
                apply(playback.on_mark(wire.pop(0)))
            continue
        part = bytes([n % 200 + 1]) * op
        parts += part
        apply(playback.extend("k", part, final=False))
        assert sent == parts[: len(sent)], "nothing but the parts so far, in order"
        whole_ms = (len(parts) - len(sent)) // 160 * 20
        assert not whole_ms or playback.outstanding_ms + min(whole_ms, 100) > 300, (
            "a whole frame waits only for the lead"
        )
    if ending == "final part":
        parts += b"\xfe" * 7
        apply(playback.extend("k", b"\xfe" * 7, final=True))
    elif ending == "empty final part":
        apply(playback.extend("k", b"", final=True))
    else:
        apply(playback.close("k"))
    while wire:
        apply(playback.on_mark(wire.pop(0)))
    assert sent == parts + padding(len(parts))
    [done] = ended
    assert done.queued_ms == done.played_ms == frames_ms(len(parts))
    assert playback.idle


def test_an_echo_confirms_every_mark_before_it():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    sent = marks(playback.play("speech", audio(600)))
    step = playback.on_mark(sent[1])
    assert playback.played_ms == 200
    assert media_ms(step) == [100, 100]


def test_clear_mid_utterance_closes_the_books():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    sent = marks(playback.play("speech", audio(1000)))
    playback.on_mark(sent[0])
    step = playback.clear()
    assert step.outbound == [Clear()]
    [done] = step.ended
    assert (done.played_ms, done.cleared_ms, done.queued_ms) == (100, 900, 1000)
    assert playback.idle and playback.outstanding_ms == 0 and playback.generation == 2
    assert playback.clear() == Step(), "nothing is queued: no second clear"


def test_marks_echoed_by_the_clear_are_never_played():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    sent = marks(playback.play("speech", audio(1000)))
    playback.clear()
    for name in sent:  # Twilio echoes the pending marks at once on clear
        assert playback.on_mark(name) == Step()
    assert playback.played_ms == 0 and playback.cleared_ms == 1000
    assert playback.stale_marks == 3


def test_a_stale_mark_does_not_credit_the_next_generation():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    old = marks(playback.play("a", audio(500)))
    playback.clear()
    new = marks(playback.play("b", audio(500)))
    assert new[0] == "vf2.4"
    assert playback.on_mark(old[0]) == Step()
    assert playback.outstanding_ms == 300 and playback.played_ms == 0
    assert media_ms(playback.on_mark(new[0])) == [100]
    assert playback.played_ms == 100


def test_late_audio_of_a_cleared_utterance_is_ignored():
    playback = Playback()
    playback.play("speech", audio(200), key="reply-1", final=False)
    playback.clear()
    assert playback.extend("reply-1", audio(200), final=True) == Step()
    assert playback.late_audio == 1 and playback.idle


def test_a_streamed_utterance_waits_for_its_next_part_and_keeps_order():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    step = playback.play("speech", audio(100), key="k", final=False)
    sent = marks(step)
    assert sent == ["vf1.1"]
    assert media_ms(playback.play("next", audio(100))) == [], "it waits behind the open one"
    step = playback.extend("k", audio(100), final=True)
    assert marks(step) == ["vf1.2.end", "vf1.3.end"]
    assert playback.extend("k", audio(100), final=True) == Step()
    assert playback.late_audio == 1


def test_parts_that_never_came_are_counted_and_the_rest_plays():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    playback.play("speech", audio(100), key="k", final=False)
    playback.extend("k", audio(100), final=False, part=1)
    step = playback.extend("k", audio(100), final=True, part=4)  # parts 2 and 3 were dropped
    assert playback.lost_parts == 2
    assert media_ms(step) == [100]


def test_the_queue_bound_refuses_new_audio_and_counts_it():
    playback = Playback(max_queued_ms=1000)
    playback.play("a", audio(800))
    assert playback.play("b", audio(400)) == Step()
    assert (playback.refused, playback.refused_ms, playback.unsettled_ms) == (1, 400, 800)
    playback.play("c", audio(200))
    assert playback.unsettled_ms == 1000


def test_a_refused_part_ends_a_streamed_utterance_with_what_it_has():
    playback = Playback(max_queued_ms=500)
    sent = marks(playback.play("speech", audio(300), key="k", final=False))
    playback.extend("k", audio(400), final=False)
    assert playback.refused == 1
    for name in sent:
        step = playback.on_mark(name)
    [done] = step.ended
    assert (done.queued_ms, done.played_ms) == (300, 300)
    assert playback.extend("k", audio(100), final=True) == Step()


def test_a_filler_plays_only_when_idle_and_speech_clears_it():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    chime = marks(playback.play("chime", audio(400), filler=True))
    playback.on_mark(chime[0])
    step = playback.play("speech", audio(200))
    assert step.outbound[0] == Clear()
    assert media_ms(step) == [100, 100]
    [cut] = step.ended
    assert (cut.label, cut.played_ms, cut.cleared_ms) == ("chime", 100, 300)
    assert playback.play("chime", audio(400), filler=True) == Step()
    assert playback.filler_played_ms == 100
    assert playback.clear_filler() == Step(), "clear_filler never clears the assistant"
    assert playback.playing.label == "speech"


def test_clear_filler_clears_only_a_filler():
    playback = Playback()
    playback.play("chime", audio(400), filler=True)
    step = playback.clear_filler()
    assert step.outbound == [Clear()] and step.ended[0].label == "chime"


def test_marks_that_are_not_ours_are_counted_and_ignored():
    playback = Playback()
    playback.play("speech", audio(500))
    for name in ("m100", "vfx.1", "vf", "vf99999999999.1", "vf1.99", "vf0.1"):
        assert playback.on_mark(name) == Step()
    assert playback.foreign_marks == 4 and playback.stale_marks == 2
    assert playback.outstanding_ms == 300


def test_end_of_call_counts_what_was_not_confirmed_as_cleared():
    playback = Playback()
    playback.play("a", audio(500))
    playback.play("b", audio(500))
    step = playback.end()
    assert step.outbound == []
    assert [(u.label, u.played_ms, u.cleared_ms) for u in step.ended] == [
        ("a", 0, 500),
        ("b", 0, 500),
    ]


def test_settings_are_checked():
    for lead, every in ((100, 200), (300, 10)):
        try:
            Playback(lead_ms=lead, mark_every_ms=every)
        except ValueError as exc:
            assert "mark_every_ms" in str(exc)
        else:
            raise AssertionError(f"accepted lead {lead} every {every}")


ops = st.lists(
    st.one_of(
        st.tuples(st.just("play"), st.integers(0, 5600), st.booleans(), st.booleans()),
        st.tuples(st.just("extend"), st.integers(0, 5600), st.booleans(), st.booleans()),
        st.tuples(st.just("echo"), st.integers(1, 3)),
        st.tuples(st.just("close")),
        st.tuples(st.just("clear")),
        st.tuples(st.just("clear_filler")),
        st.tuples(st.just("stale")),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(ops, st.sampled_from([(300, 100), (100, 20), (200, 60), (500, 500)]))
def test_the_books_always_balance(script, lead_every):
    """Random plays, streamed parts of any size, closes, echoes, clears and stale marks against
    a model of Twilio's buffer: the lead holds, only whole frames are sent, the books of every
    utterance balance, nothing is played twice. Queued is each utterance's audio so far,
    rounded up to whole frames."""
    lead, every = lead_every
    playback = Playback(lead_ms=lead, mark_every_ms=every, max_queued_ms=2000)
    wire: list[str] = []  # marks Twilio holds, in order
    echoed_stale: list[str] = []
    accepted: dict[str, int] = {}  # bytes each utterance took
    ended_played = ended_cleared = 0
    keys = 0

    def apply(step: Step) -> None:
        nonlocal ended_played, ended_cleared
        for message in step.outbound:
            if isinstance(message, Clear):
                echoed_stale.extend(wire)
                wire.clear()
            elif isinstance(message, Mark):
                wire.append(message.name)
            else:
                assert message.audio and len(message.audio) % 160 == 0
        for u in step.ended:
            assert u.played_ms + u.cleared_ms == u.queued_ms
            ended_played += u.played_ms
            ended_cleared += u.cleared_ms

    for op in script:
        refused = playback.refused
        if op[0] == "play":
            keys += 1
            filler, final = op[2], op[3]
            idle = playback.idle
            apply(playback.play("x", b"\x10" * op[1], key=str(keys), final=final, filler=filler))
            if (not filler or idle) and playback.refused == refused:
                accepted[str(keys)] = op[1]
        elif op[0] == "extend":
            late = playback.late_audio
            apply(playback.extend(str(keys), b"\x10" * op[1], final=op[3]))
            if playback.late_audio == late and playback.refused == refused:
                accepted[str(keys)] += op[1]
        elif op[0] == "echo":
            for _ in range(op[1]):
                if wire:
                    apply(playback.on_mark(wire.pop(0)))
        elif op[0] == "close":
            apply(playback.close(str(keys)))
        elif op[0] == "clear":
            apply(playback.clear())
        elif op[0] == "clear_filler":
            apply(playback.clear_filler())
        elif echoed_stale:
            apply(playback.on_mark(echoed_stale.pop(0)))
        queued = sum(frames_ms(size) for size in accepted.values())
        assert 0 <= playback.outstanding_ms <= lead
        assert playback.unsettled_ms <= 2000
        assert playback.played_ms + playback.cleared_ms + playback.unsettled_ms == queued
    apply(playback.end())
    assert (ended_played, ended_cleared) == (playback.played_ms, playback.cleared_ms)
    assert ended_played + ended_cleared == sum(frames_ms(size) for size in accepted.values())


def test_heard_ms_is_what_the_echoes_confirmed_of_a_queued_utterance_only():
    playback = Playback(lead_ms=300, mark_every_ms=100)
    step = playback.play("speech", b"\x10" * 500 * 8, key="item_1")
    marks = [m.name for m in step.outbound if isinstance(m, Mark)]
    assert playback.heard_ms("item_1") == 0, "sent is not heard"
    playback.on_mark(marks[1])
    assert playback.heard_ms("item_1") == 200
    assert playback.heard_ms("item_2") == 0, "never queued"
    playback.clear()
    assert playback.heard_ms("item_1") == 0, "over: its books are closed"


def test_an_utterance_whose_end_comes_after_all_its_audio_was_sent_gets_a_bare_end_mark():
    """A model's audio ends with an empty `done`: its last mark went out without `.end`, so a
    mark of its own says where it ends (the simulator's playout reads utterances by it)."""
    playback = Playback(lead_ms=300, mark_every_ms=100)
    opened = playback.play("speech", b"\x10" * 320, key="item_1", final=False)
    assert [type(m).__name__ for m in opened.outbound] == ["Media", "Mark"]
    assert not opened.outbound[1].name.endswith(END_SUFFIX)
    closed = playback.extend("item_1", b"", final=True)
    [end] = closed.outbound
    assert isinstance(end, Mark) and end.name.endswith(END_SUFFIX)
    [utterance] = playback.on_mark(opened.outbound[1].name).ended  # all of it was heard
    assert (utterance.played_ms, utterance.cleared_ms) == (40, 0)
    assert playback.on_mark(end.name).ended == [] and playback.idle
