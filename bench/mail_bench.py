"""Benchmark: many invitation e-mails through the dispatcher to a local SMTP server.

N graduates who are in no chat but have an e-mail address each have an invitation due now;
one dispatcher claims them and sends each as an e-mail (HTML and text, the Telegram link's QR
code inline, List-Unsubscribe) at the configured mail rate (MAIL_SEND_PER_SECOND), through
one SMTP connection to aiosmtpd in its own process (bench/smtp_sink.py), so the CPU time
measured here is ours alone. Reported: total time against the time the configured rate needs
(achieved / configured), our CPU time per mail, our peak memory, and what the server received
(duplicates = received - N).

    .venv/bin/python -m bench.mail_bench [--count 100000] [--rate 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlmodel import col

from bench.common import (
    bench,
    command_line,
    free_port,
    invitations_due_now,
    machine,
    peak_memory_mb,
    seed_graduates,
)
from bot.delivery import RateLimiter, dispatch_due
from bot.mail import SmtpMailer, parse_smtp_url
from storage.models import Graduate


async def run(count: int, rate: float, database_url: str | None) -> None:
    port = free_port()
    sink = subprocess.Popen(  # noqa: ASYNC220 (once, before anything is measured)
        [sys.executable, "-m", "bench.smtp_sink", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == "ready"
    try:
        async with bench(1, database_url) as b:
            # In no chat, never asked: invited by e-mail.
            _school, ids = await seed_graduates(b.db, b.first_user, count, onboarded=False)
            async with b.db.session() as session:
                await session.exec(
                    update(Graduate).values(email=col(Graduate.student_ref).concat("@example.org"))
                )
            await invitations_due_now(b.db, ids)
            url = f"smtp+insecure://127.0.0.1:{port}"
            b.rt.settings.smtp_url = url
            b.rt.settings.mail_from = "Bench College <noreply@bench.example>"
            b.rt.settings.mail_send_per_second = rate
            b.rt.mailer = SmtpMailer(parse_smtp_url(url), timeout=30)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            report = await dispatch_due(
                b.rt,
                limiter=RateLimiter(0),
                mail_limiter=RateLimiter(rate, burst=10),
                batch=1000,
                concurrency=8,
            )
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            await b.rt.mailer.close()
            backend = make_url(b.url).get_backend_name()
    finally:
        sink.terminate()
        out, _ = await asyncio.to_thread(sink.communicate, timeout=30)
    received = int(out.split()[1]) if out.startswith("received") else -1
    unique = int(out.split()[3]) if out.startswith("received") else -1
    ideal = count / rate
    print(f"{machine()}; database: {backend}")
    print(f"invitations due (e-mail): {count}")
    print(
        f"sent / skipped / failed / retried: {report.sent} / {report.skipped} / "
        f"{report.failed} / {report.retried}"
    )
    print(f"SMTP server received:   {received} ({unique} distinct)")
    print(f"duplicates:             {received - count}")
    print(f"configured mail rate:   {rate:.0f}/s -> ideal {ideal:.1f} s")
    achieved = count / wall
    print(f"total time:             {wall:.1f} s (achieved {achieved:.0f}/s)")
    print(f"achieved / configured:  {min(achieved, rate) / rate:.2f}")
    print(f"our CPU per mail:       {cpu / count * 1000:.2f} ms")
    print(f"our peak memory (RSS):  {peak_memory_mb():.0f} MB")


def main() -> None:
    command_line(__doc__, run)


if __name__ == "__main__":
    main()
