"""Read pacing: a trickle of output is read in batches, never a first line after a
quiet spell, a flood, an echo or a stream's order (pacing.py, PipeReader)."""

from __future__ import annotations

import asyncio

from ccx_tui.engine.sessions.pacing import HOLD, TRICKLE, TYPED_QUIET, ReadPacer
from tests.helpers import until
from tests.test_pipes import Sink, start


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Watch:
    """The fd a pacer controls: watched or not, and how often it was started."""

    def __init__(self) -> None:
        self.watched = True
        self.starts = 0
        self.started = asyncio.Event()

    def start(self) -> None:
        self.watched = True
        self.starts += 1
        self.started.set()

    def stop(self) -> None:
        self.watched = False


def pacer() -> tuple[ReadPacer, Watch, Clock]:
    watch, clock = Watch(), Clock()
    return ReadPacer(watch.start, watch.stop, clock=clock), watch, clock


LINE = 80  # bytes: a log line


def trickle_of_two(p: ReadPacer, clock: Clock) -> None:
    """Two lines 10 ms apart: the pacer holds the next read back."""
    p.after_read(LINE)
    clock.now += 0.01
    p.after_read(LINE)
    assert p.holding


async def test_a_first_read_after_quiet_is_never_held_a_steady_trickle_is() -> None:
    p, watch, clock = pacer()
    p.after_read(LINE)  # the first read ever
    assert not p.holding and watch.watched
    clock.now += 2 * HOLD  # a quiet spell: the next line is read at once too
    p.after_read(LINE)
    assert not p.holding
    clock.now += 0.01  # then a line every 10 ms: a trickle
    p.after_read(LINE)
    assert p.holding and not watch.watched
    await asyncio.wait_for(watch.started.wait(), 5)  # the hold ends by itself
    assert watch.watched and watch.starts == 1 and not p.holding


async def test_a_flood_or_a_burst_is_never_held() -> None:
    p, watch, clock = pacer()
    p.after_read(LINE)
    clock.now += 0.01
    p.after_read(int(TRICKLE * 0.01) + 1)  # faster than a trickle
    assert not p.holding
    clock.now += 0.0001
    p.after_read(LINE)  # two reads 0.1 ms apart: a burst
    assert not p.holding
    clock.now += HOLD
    p.after_read(4096)  # a terminal's buffer gathered during a hold: 80 KiB/s
    assert not p.holding and watch.watched


async def test_typing_ends_a_hold_and_stops_pacing_for_a_while() -> None:
    p, watch, clock = pacer()
    trickle_of_two(p, clock)
    p.typed()  # the echo must come at once
    assert not p.holding and watch.watched and watch.starts == 1
    for _ in range(3):
        clock.now += 0.01
        p.after_read(LINE)
        assert not p.holding
    clock.now += TYPED_QUIET
    trickle_of_two(p, clock)  # typing is long over: a trickle again


async def test_a_cancelled_hold_never_watches_the_fd_again() -> None:
    p, watch, clock = pacer()
    trickle_of_two(p, clock)
    p.cancel()  # the owner paused or closed it
    await asyncio.sleep(3 * HOLD)
    assert not watch.watched and watch.starts == 0 and not p.holding


TRICKLE_CODE = """
import sys, time
for i in range({n}):
    sys.stdout.write(f"line {{i:05d}} " + "." * 60 + "\\n"); sys.stdout.flush()
    time.sleep(0.005)
{tail}
"""


def trickle(n: int, tail: str = "") -> str:
    return TRICKLE_CODE.format(n=n, tail=tail)


def lines(n: int) -> bytes:
    return b"".join(f"line {i:05d} {'.' * 60}\n".encode() for i in range(n))


async def test_a_trickle_through_pipes_comes_whole_in_fewer_reads() -> None:
    """200 lines 5 ms apart: read unpaced, that is about 200 chunks; paced, one
    every HOLD (about 25).  Every byte arrives, in order."""
    sink = Sink()
    transport, reader = await start(trickle(200), sink)
    try:
        await asyncio.wait_for(reader.closed, 30)
    finally:
        transport.close()
    assert bytes(sink.data[0]) == lines(200)
    assert len(sink.sizes) < 100, sink.sizes


class OrderSink(Sink):
    """A Sink that also keeps the order chunks of both streams came in."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[int, bytes]] = []

    def on_data(self, stream: int, data: bytes) -> None:
        self.order.append((stream, data))
        super().on_data(stream, data)


async def test_a_held_stdout_is_read_before_the_stderr_line_written_after_it() -> None:
    """stdout trickles (so its reads are held), then a line goes to stdout and one to
    stderr: what stdout held back is delivered first, as it was written first."""
    sink = OrderSink()
    tail = (
        "sys.stdout.write('last\\n'); sys.stdout.flush()\n"
        "sys.stderr.write('ERR\\n'); sys.stderr.flush(); time.sleep(0.5)"
    )
    transport, reader = await start(trickle(60, tail), sink)
    try:
        await asyncio.wait_for(reader.closed, 30)
    finally:
        transport.close()
    assert bytes(sink.data[1]) == b"ERR\n"
    err_at = next(i for i, (stream, _) in enumerate(sink.order) if stream == 1)
    before = b"".join(data for stream, data in sink.order[:err_at] if stream == 0)
    assert before == lines(60) + b"last\n"


async def test_pausing_during_a_hold_reads_nothing_until_resumed() -> None:
    sink = Sink()
    transport, reader = await start(trickle(400), sink)
    try:
        pacer = reader._pacers[0]  # noqa: SLF001
        await until(lambda: pacer.holding, timeout=10)
        reader.pause()
        got = len(sink.data[0])
        await asyncio.sleep(4 * HOLD)  # the hold's timer would have fired by now
        assert len(sink.data[0]) == got  # paused: not one byte more
        reader.resume()
        await asyncio.wait_for(reader.closed, 30)
    finally:
        transport.close()
    assert bytes(sink.data[0]) == lines(400)
    assert sink.eofs == [0, 1] or sink.eofs == [1, 0]


async def test_a_slow_writer_on_a_terminal_is_paced_and_an_echo_is_not(
    make_engine: object,
) -> None:
    """Through the engine, on a terminal: a trickle lands whole; a key typed into
    the session is echoed with no hold (the pacer was released by the typing)."""
    from tests.test_pty import py, tty

    code = (
        "import sys, time\n"
        "for i in range(100):\n"
        "    print(f'tick {i}', flush=True); time.sleep(0.005)\n"
        "print('ready', flush=True)\n"
        "print('got=' + sys.stdin.readline().strip(), flush=True)\n"
    )
    async with make_engine() as engine:  # type: ignore[operator]
        info = await engine.start(tty(py(code)))
        await until(lambda: b"ready" in info.transcript.read_bytes(), timeout=30)
        await engine.send_input(info.id, b"hello\r")
        info = await engine.wait(info.id)
    text = info.transcript.read_bytes().replace(b"\r\n", b"\n")
    assert b"".join(f"tick {i}\n".encode() for i in range(100)) in text
    assert b"got=hello\n" in text


def test_the_pacing_constants_keep_a_hold_under_a_terminal_buffer() -> None:
    """What a trickle can gather in one hold stays well under the smallest buffer a
    writer could block on (4 KiB for a terminal): a hold never stops a writer."""
    assert TRICKLE * HOLD < 4096 / 2
