"""Benchmark: does one flooding chat slow down everyone else?

Processes, as in bench/updates_bench.py: the sandbox (`python -m bot.sandbox
--no-rate-limits`), two gradtrack bots, each in a process of its own with a SQLite database of
its own and python-telegram-bot's AIORateLimiter (as shipped), and this one, which plays the
people over the sandbox's user-side HTTP API:
- bot *on*: flood control as shipped (THROTTLE_PER_SECOND and THROTTLE_BURST unset);
- bot *off*: flood control off (THROTTLE_PER_SECOND=0).

Four people each send /help to a bot, wait for the answer and half a second more, in a closed
loop. Segments of --duration seconds, alternating so that a shared, noisy machine weighs on
both bots alike (--rounds of: on quiet, on flooded, off quiet, off flooded): in a flooded
segment one more chat sends --rate messages a second to the same bot, without waiting for
answers. Reported per bot and phase: the people's answers per second (and against the same
bot's quiet segments), their round trip p50/p95/max, what became of the flood (messages
sent; answers to them: the sendMessage calls of the segment beyond the people's answers,
counted once the bot is idle again) and the CPU, in cores, of the bot process, of the sandbox
process and of the rest of the machine (this process's people and flood, other people's work)
over the segments (a flooded one until the bot is idle again).

    .venv/bin/python -m bench.flood_bench [--mode polling|webhook|both] [--duration 10]
        [--rounds 2] [--rate 300] [--flood-control on|off|on,off]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import machine
from bench.updates_bench import (
    TOKENS,
    Chat,
    Check,
    Sandbox,
    cpu_seconds,
    launch,
    machine_busy,
    print_profile,
    sandbox_process,
    settle,
)
from bot.settings import Settings
from storage.migrate import upgrade

PEOPLE = 4
THINK = 0.5  # seconds between a person's answer and their next message: quicker than people
DRAIN = 3.0  # seconds after a segment for the bot to catch up before its answers are counted
#: Both bots run gradtrack; the second one under the sandbox's second bot (its "echo" token).
SLOTS = {"on": "gradtrack", "off": "echo"}


def answered(before: int) -> Check:
    """Any new message of the bot."""

    def check(changed: list[dict[str, Any]]) -> dict[str, Any] | None:
        for e in changed:
            if e["kind"] == "message" and e["sender"] == "bot" and e["seq"] > before:
                return e
        return None

    return check


@dataclass
class Phase:
    """One bot's quiet or flooded segments, summed."""

    round_trips: list[float] = field(default_factory=list)
    seconds: float = 0.0
    flood_sent: int = 0
    flood_answered: int = 0
    errors: int = 0
    #: CPU seconds of the bot process, the sandbox process and the whole machine.
    bot_cpu: float = 0.0
    sandbox_cpu: float = 0.0
    machine_cpu: float = 0.0
    #: The segments' length with their drains: the span of the CPU figures.
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.round_trips) / self.seconds if self.seconds else 0.0


async def person(
    http: aiohttp.ClientSession, sb: Sandbox, slot: str, chat_id: int, until: float, p: Phase
) -> None:
    chat = Chat(http, sb.url, slot, chat_id)
    await chat.sync()
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            await chat.act("messages", {"text": "/help"}, answered(chat.revision))
        except (TimeoutError, RuntimeError, aiohttp.ClientError):
            p.errors += 1
            await chat.sync()
            continue
        p.round_trips.append(time.perf_counter() - started)
        await asyncio.sleep(THINK)


async def flood(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    slot: str,
    chat_id: int,
    until: float,
    rate: float,
    p: Phase,
) -> None:
    """`rate` messages a second from one chat, each sent without waiting for the last."""
    url = f"{Chat(http, sb.url, slot, chat_id).url}/messages"
    pending: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.post(url, json={"text": f"/help {n}"}) as response:
                await response.read()

    next_at = time.perf_counter()
    while time.perf_counter() < until:
        task = asyncio.create_task(one(p.flood_sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        p.flood_sent += 1
        next_at += 1.0 / rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.gather(*pending)


async def segment(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    slot: str,
    pid: int,
    people: list[int],
    flooder: int | None,
    duration: float,
    rate: float,
    p: Phase,
    profile: bool = False,
) -> None:
    sent_before = (await sb.ok_calls()).get("sendmessage", 0)
    answers_before = len(p.round_trips)
    cpu_before = cpu_seconds(pid), cpu_seconds(sb.proc.pid), machine_busy()
    started = time.perf_counter()
    until = started + duration
    tasks = [person(http, sb, slot, chat_id, until, p) for chat_id in people]
    if flooder is not None:
        tasks.append(flood(http, sb, slot, flooder, until, rate, p))
    if profile:
        os.kill(pid, signal.SIGUSR1)
    await asyncio.gather(*tasks)
    if profile:
        os.kill(pid, signal.SIGUSR2)
    p.seconds += time.perf_counter() - started
    await asyncio.sleep(DRAIN)
    if flooder is not None:
        # Without flood control the bot works through the whole flood (at AIORateLimiter's
        # 30 answers a second), long after the segment: the next segment waits for it.
        await settle(pid, timeout=600)
    p.bot_cpu += cpu_seconds(pid) - cpu_before[0]
    p.sandbox_cpu += cpu_seconds(sb.proc.pid) - cpu_before[1]
    p.machine_cpu += machine_busy() - cpu_before[2]
    p.wall += time.perf_counter() - started
    sent = (await sb.ok_calls()).get("sendmessage", 0) - sent_before
    if flooder is not None:
        p.flood_answered += sent - (len(p.round_trips) - answers_before)


def row(bot: str, name: str, p: Phase, quiet: Phase) -> str:
    ordered = sorted(p.round_trips) or [float("nan")]
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[int(0.95 * (len(ordered) - 1))] * 1000
    worst = ordered[-1] * 1000
    versus = f"**{p.rate / quiet.rate:.2f}**" if p is not quiet and quiet.rate else "1.00"
    flood_ = f"{p.flood_sent} / {p.flood_answered}" if p.flood_sent else "-"
    wall = p.wall or float("nan")
    others = p.machine_cpu - p.bot_cpu - p.sandbox_cpu
    cpu = f"{p.bot_cpu / wall:.0%} / {p.sandbox_cpu / wall:.0%} / {others / wall:.0%}"
    return (
        f"| {bot} | {name} | {p.rate:.2f} | {versus} | {p50:.0f} / {p95:.0f} / {worst:.0f} "
        f"| {flood_} | {cpu} | {p.errors} |"
    )


def chats(sb: Sandbox, slot: str, count: int) -> Iterator[int]:
    """Fresh started users of the bot in `slot`: people and flooders never share a chat."""
    if slot == "gradtrack":
        return iter(range(sb.first_user, sb.first_user + count))
    return iter(sb.echo_users)


async def run_mode(mode: str, args: argparse.Namespace) -> list[str]:
    defaults = Settings.model_fields
    envs = {
        "on": {
            "THROTTLE_PER_SECOND": str(defaults["throttle_per_second"].default),
            "THROTTLE_BURST": str(defaults["throttle_burst"].default),
        },
        "off": {"THROTTLE_PER_SECOND": "0"},
    }
    users_needed = (PEOPLE + 1) * args.rounds * 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with sandbox_process(users_needed, users_needed) as sb:
            procs = {}
            try:
                for name, slot in SLOTS.items():
                    if name not in args.flood_control:
                        continue
                    url = f"sqlite+aiosqlite:///{tmp / name}.sqlite3"
                    await upgrade(url)
                    env = {**envs[name], "TELEGRAM_BOT_TOKEN": TOKENS[slot]}
                    profile = str(tmp / "profile") if args.profile and name == "on" else ""
                    procs[name] = await launch(
                        tmp / name, sb, url, "gradtrack", mode, True, profile, env=env
                    )
                quiet = {name: Phase() for name in SLOTS}
                flooded = {name: Phase() for name in SLOTS}
                pool = {name: chats(sb, slot, users_needed) for name, slot in SLOTS.items()}
                order = [("on", False), ("on", True), ("off", False), ("off", True)]
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                    for r in range(args.rounds):
                        for name, flooding in order:
                            if name not in args.flood_control:
                                continue
                            slot, ids = SLOTS[name], pool[name]
                            people = [next(ids) for _ in range(PEOPLE)]
                            flooder = next(ids) if flooding else None
                            phase = (flooded if flooding else quiet)[name]
                            print(
                                f"  {mode}, round {r + 1}: flood control {name}, "
                                f"{'flooded' if flooding else 'quiet'}",
                                flush=True,
                            )
                            procs[name].check_alive()
                            await segment(
                                http,
                                sb,
                                slot,
                                procs[name].proc.pid,
                                people,
                                flooder,
                                args.duration,
                                args.rate,
                                phase,
                                profile=args.profile and name == "on" and flooding,
                            )
            finally:
                for process in procs.values():
                    with contextlib.suppress(BaseException):
                        process.stop()
        if args.profile:
            print(f"{mode}: the flood control on bot's flooded segments under cProfile")
            print_profile(str(tmp / "profile"))
    rows = []
    for name in args.flood_control:
        rows.append(row(mode, f"flood control {name}, quiet", quiet[name], quiet[name]))
        flood_ = f"flood control {name}, {args.rate:.0f}/s flood"
        rows.append(row(mode, flood_, flooded[name], quiet[name]))
    return rows


async def run(args: argparse.Namespace) -> None:
    modes = ["polling", "webhook"] if args.mode == "both" else [args.mode]
    rows = []
    for mode in modes:
        rows += await run_mode(mode, args)
    print()
    print(
        f"Command: .venv/bin/python -m bench.flood_bench --mode {args.mode} "
        f"--duration {args.duration:g} --rounds {args.rounds} --rate {args.rate:g} "
        f"--flood-control {','.join(args.flood_control)}"
    )
    print(
        f"{machine()}; SQLite; {PEOPLE} people in a closed loop; "
        f"{args.rounds} segments of {args.duration:g} s per row"
    )
    print()
    print(
        "| mode | phase | people's answers/s | vs quiet | round trip p50 / p95 / max ms "
        "| flood sent / answered | CPU: bot / sandbox / the rest | people's errors |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for line in rows:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--mode", choices=("polling", "webhook", "both"), default="both")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument(
        "--flood-control",
        type=lambda v: [x for x in ("on", "off") if x in v.split(",")] or ["on", "off"],
        default=["on", "off"],
        help="on, off or on,off (the default): which bots to run",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the flood control on bot's flooded segments (cProfile) and print where "
        "its event loop's time goes",
    )
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
