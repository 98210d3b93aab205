"""Running a command's coroutine so that the process always ends.

`asyncio.run` ends by cancelling the tasks still pending and waiting for them without a
limit, and the interpreter then waits for every non-daemon thread. Both can wait forever: a
task cancelled inside an SQLite statement leaves its connection to be torn down by
SQLAlchemy in a shielded task, and with aiosqlite 0.22 that close can wait for a worker
thread that has already stopped (seen as `gradtrack run` hanging after SIGTERM). Such a
process has done its work (the commands end their work before returning), but a deploy or a
test waiting for it to exit would wait forever.

`run` does what `asyncio.run` does with limits: the tasks left are cancelled and given
`grace` seconds; what still does not end is logged by name, and `finish` then ends the
process at once (`os._exit`, after flushing the logs and the output) instead of waiting for
it. A clean run ends as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long the tasks left when the command's coroutine returns get to end once cancelled.
EXIT_GRACE_SECONDS = 5.0

_stuck: list[str] = []


def run(main: Coroutine[Any, Any, T], grace: float = EXIT_GRACE_SECONDS) -> T:
    """Run `main` on a new event loop, then close the loop within about `grace` seconds."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _stuck.extend(_cancel_left(loop, grace))
            loop.run_until_complete(_bounded(loop.shutdown_asyncgens(), grace))
            _stuck.extend(_executor_left(loop, grace))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} ({name})"


def _cancel_left(loop: asyncio.AbstractEventLoop, grace: float) -> list[str]:
    left = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not left:
        return []
    for task in left:
        task.cancel()
    done, pending = loop.run_until_complete(asyncio.wait(left, timeout=grace))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception in a task left at exit",
                    "exception": task.exception(),
                    "task": task,
                }
            )
    return [_describe(task) for task in pending]


async def _bounded(work: Coroutine[Any, Any, None], grace: float) -> None:
    try:
        await asyncio.wait_for(work, grace)
    except TimeoutError:
        log.warning("exit: the event loop's async generators did not close in %.0f s", grace)


def _executor_left(loop: asyncio.AbstractEventLoop, grace: float) -> list[str]:
    """Shut the loop's default executor down, waiting up to `grace` for its threads."""
    executor: concurrent.futures.ThreadPoolExecutor | None = getattr(
        loop, "_default_executor", None
    )
    if executor is None:
        return []
    executor.shutdown(wait=False, cancel_futures=True)
    threads = list(getattr(executor, "_threads", ()))
    for thread in threads:
        thread.join(grace / max(1, len(threads)))
    return [f"thread {t.name}" for t in threads if t.is_alive()]


def _threads_left(grace: float = 2.0) -> list[str]:
    """The non-daemon threads still running after up to `grace` seconds (those the
    interpreter would wait for at exit)."""
    main = threading.main_thread()
    threads = [t for t in threading.enumerate() if t is not main and not t.daemon]
    deadline = time.monotonic() + grace
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [f"thread {t.name}" for t in threads if t.is_alive()]


def finish(code: int) -> int:
    """The exit code for `main()` to return, or, when `run` left tasks or threads that did
    not end (the interpreter would wait for them forever), the end of the process now."""
    stuck = _stuck + [t for t in _threads_left() if t not in _stuck]
    if not stuck:
        return code
    log.warning(
        "exit: %d tasks or threads did not end when stopping (%s): ending the process now",
        len(stuck),
        ", ".join(stuck),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
