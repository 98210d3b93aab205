"""How `gradtrack run` stops: start N sandbox processes side by side (each its own SQLite
file), send SIGTERM as soon as each says it is ready (its scheduler's jobs are starting
then), and report how long each took to exit, its exit code, and whether it logged an
error. A process still running `--wait` seconds after SIGTERM is killed and counted as hung.

    .venv/bin/python bench/stop_bench.py --processes 8 --rounds 2 --load 2

`--load K` keeps K busy-loop processes running meanwhile (a loaded CI machine)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GRADTRACK = str(Path(sys.executable).with_name("gradtrack"))
READY = "Press Ctrl+C to stop."


@dataclass
class Stop:
    seconds: float
    code: int | None
    errors: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one(wait: float) -> Stop:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TELEGRAM_", "DATABASE_", "SECRET_", "SMTP_"))
        } | {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/db.sqlite3",
            "SANDBOX_PORT": str(_free_port()),
            "PORT": str(_free_port()),
            "HOST": "127.0.0.1",
        }
        process = await asyncio.create_subprocess_exec(
            GRADTRACK,
            "run",
            env=env,
            cwd=tmp,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        lines: list[str] = []
        async for raw in process.stdout:
            lines.append(raw.decode(errors="replace"))
            if READY in lines[-1]:
                break
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            rest, _ = await asyncio.wait_for(process.communicate(), wait)
            code = process.returncode
        except TimeoutError:
            process.kill()
            rest, _ = await process.communicate()
            code = None
        seconds = time.monotonic() - started
        lines += rest.decode(errors="replace").splitlines()
        errors = sum(1 for line in lines if "ERROR" in line or "Traceback" in line)
        return Stop(seconds, code, errors)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--load", type=int, default=2, help="busy-loop processes meanwhile")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds before 'hung'")
    args = parser.parse_args()
    busy = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
        for _ in range(args.load)
    ]
    stops: list[Stop] = []
    try:
        for _ in range(args.rounds):
            stops += await asyncio.gather(*(one(args.wait) for _ in range(args.processes)))
    finally:
        for process in busy:
            process.kill()
            await process.wait()
    times = sorted(s.seconds for s in stops if s.code is not None)
    print(f"machine: {os.cpu_count()} cores; {len(stops)} stops, load {args.load}")
    print(f"hung (killed after {args.wait:.0f} s): {sum(s.code is None for s in stops)}")
    print(f"exit code not 0: {sum(s.code not in (0, None) for s in stops)}")
    print(f"logged an error: {sum(s.errors > 0 for s in stops)}")
    if times:
        print(f"seconds to exit: median {times[len(times) // 2]:.1f}, max {times[-1]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
