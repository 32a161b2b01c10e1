"""Pipes: a child's stdout and stderr read whole, paused, resumed and closed
(PipeReader), and `exec`'s own output when it goes to /dev/null or a pipe."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import termios
from array import array
from pathlib import Path

import pytest

from ccx_tui.engine.sessions.process import PIPE_SIZE, READ_SIZE, PipeReader, spawn
from tests.helpers import until

F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class Sink:
    """What a PipeReader delivered: bytes and chunk sizes per stream, EOFs in order."""

    def __init__(self) -> None:
        self.data = [bytearray(), bytearray()]
        self.sizes: list[int] = []
        self.eofs: list[int] = []

    def on_data(self, stream: int, data: bytes) -> None:
        assert stream not in self.eofs, "data after EOF"
        self.data[stream] += data
        self.sizes.append(len(data))

    def on_eof(self, stream: int) -> None:
        self.eofs.append(stream)


async def start(code: str, sink: Sink) -> tuple[asyncio.SubprocessTransport, PipeReader]:
    transport, _proto, reader = await spawn(
        [sys.executable, "-c", code],
        cwd=None,
        env={},
        marker="test-pipes",
        on_data=sink.on_data,
        on_eof=sink.on_eof,
    )
    return transport, reader


def readable(fd: int) -> int:
    """Bytes waiting in the pipe `fd` (FIONREAD)."""
    buf = array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    return buf[0]


WRITER = r"""
import os, sys
out = bytes(range(256)) * (3 * 4096 + 17)  # a bit over 3 MiB, every byte value
sys.stdout.buffer.write(out)
sys.stdout.flush()
for i in range(1000):
    os.write(2, b"err %d\n" % i)
"""


async def test_each_stream_arrives_whole_and_in_order_then_ends_once() -> None:
    """Over 3 MiB on stdout and 1000 small writes on stderr come out exactly, per
    stream, in chunks of at most READ_SIZE; each stream's EOF is reported once, after
    its last byte, and `closed` resolves."""
    sink = Sink()
    transport, reader = await start(WRITER, sink)
    try:
        await asyncio.wait_for(reader.closed, 30)
    finally:
        transport.close()
    assert bytes(sink.data[0]) == bytes(range(256)) * (3 * 4096 + 17)
    assert bytes(sink.data[1]) == b"".join(b"err %d\n" % i for i in range(1000))
    assert sorted(sink.eofs) == [0, 1]
    assert max(sink.sizes) <= READ_SIZE


async def test_a_paused_reader_holds_the_process_back_until_resumed() -> None:
    """While paused nothing is read: the child fills its stdout pipe and waits there
    (it cannot exit); once resumed, all of its output arrives."""
    size = 4 * PIPE_SIZE
    sink = Sink()
    transport, reader = await start(f"import sys; sys.stdout.buffer.write(b'x' * {size})", sink)
    reader.pause()  # before the loop ran once: nothing was read yet
    fd = reader._fds[0]
    capacity = fcntl.fcntl(fd, F_GETPIPE_SZ)
    try:
        await until(lambda: readable(fd) == capacity, what="the child filling its pipe")
        assert sink.data[0] == b"" and transport.get_returncode() is None
        reader.pause()  # pausing twice is harmless
        reader.resume()
        await asyncio.wait_for(reader.closed, 30)
    finally:
        transport.close()
    assert sink.data[0] == b"x" * size


async def test_close_ends_pipes_an_escaped_process_still_holds(tmp_path: Path) -> None:
    """A background job that outlives the shell keeps the pipes open, so they never
    reach EOF; close() ends them anyway: each stream's EOF once, `closed` resolved,
    nothing read afterwards."""
    sink = Sink()
    transport, reader = await start(
        "import os, subprocess, sys\n"
        "subprocess.Popen(['sleep', '60'])\n"
        "os.write(1, b'started\\n')\n",
        sink,
    )
    try:
        await until(lambda: transport.get_returncode() is not None, what="the shell exiting")
        await until(lambda: bytes(sink.data[0]) == b"started\n", what="its output")
        assert not reader.closed.done()
        reader.close()
        assert sorted(sink.eofs) == [0, 1] and reader.closed.done()
        reader.close()  # closing twice is harmless
        reader.resume()
        assert sorted(sink.eofs) == [0, 1]
    finally:
        pid = transport.get_pid()
        os.killpg(pid, signal.SIGKILL)  # the sleep left behind, in the child's group
        transport.close()


async def test_pipes_are_enlarged_when_the_system_allows() -> None:
    """Both pipes hold PIPE_SIZE bytes (fewer wake-ups in a flood) where the system
    allows pipes that big; elsewhere they keep their default size."""
    try:
        allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except OSError:
        pytest.skip("no /proc/sys/fs/pipe-max-size")
    sink = Sink()
    transport, reader = await start("pass", sink)
    try:
        sizes = [fcntl.fcntl(fd, F_GETPIPE_SZ) for fd in reader._fds.values()]
        await asyncio.wait_for(reader.closed, 30)
    finally:
        transport.close()
    if allowed >= PIPE_SIZE:
        assert sizes == [PIPE_SIZE, PIPE_SIZE]


COMMAND = "seq 1 200000; echo oops >&2; exit 3"


def _transcript(data_dir: Path) -> bytes:
    (found,) = (data_dir / "sessions").glob("*/transcript.log")
    return found.read_bytes()


def test_exec_into_dev_null_still_records_everything(data_dir: Path) -> None:
    """With stdout and stderr both /dev/null, exec echoes nothing (it does not even
    hand the output to its echo thread) yet the transcript holds every byte and the
    exit status is the command's."""
    expected = subprocess.run(["sh", "-c", COMMAND], capture_output=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", str(data_dir), "--", COMMAND],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 3
    assert _transcript(data_dir) == expected.stdout + expected.stderr


READ_SIZE_OF_STDIN = (
    "import fcntl, sys; data = sys.stdin.buffer.read(); "
    f"print(len(data), fcntl.fcntl(0, {F_GETPIPE_SZ}))"
)


def test_exec_echoes_into_a_pipe_it_enlarged(data_dir: Path) -> None:
    """exec's stdout is a pipe: it gets the child's pipe size (fewer wake-ups for both
    ends), and every byte still comes through it."""
    expected = subprocess.run(["sh", "-c", COMMAND], capture_output=True).stdout
    exec_argv = [sys.executable, "-m", "ccx_tui", "exec", "--data-dir", str(data_dir)]
    with subprocess.Popen([*exec_argv, "--", COMMAND], stdout=subprocess.PIPE) as ccx:
        reader = subprocess.run(
            [sys.executable, "-c", READ_SIZE_OF_STDIN],
            stdin=ccx.stdout,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ccx.wait(timeout=60) == 3
    got, size = map(int, reader.stdout.split())
    assert got == len(expected)
    try:
        allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except OSError:
        return
    if allowed >= PIPE_SIZE:
        assert size == PIPE_SIZE
