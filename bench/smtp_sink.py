"""A local SMTP server for the mail benchmark, in its own process (so that the benchmark's
CPU time is gradtrack's alone): aiosmtpd on a loopback port, counting what it receives.
On SIGTERM it prints `received <messages> unique <distinct Message-IDs>` and exits.

    python -m bench.smtp_sink PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.received = 0
        self.ids: set[str] = set()
        self.parser = BytesHeaderParser()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        headers = self.parser.parsebytes(envelope.content)
        self.ids.add(str(headers.get("Message-ID", "")))
        return "250 OK"


async def main(port: int) -> None:
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    controller.stop()
    print(f"received {counter.received} unique {len(counter.ids)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
