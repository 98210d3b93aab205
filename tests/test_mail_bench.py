"""The mail benchmark's code path at a tiny size, so that it cannot rot: the dispatcher sends
every due invitation by e-mail to the local SMTP server process, once (no timing asserted)."""

from __future__ import annotations

import pytest

from bench import mail_bench


async def test_the_mail_bench_sends_each_invitation_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await mail_bench.run(12, 1000.0, None)
    out = capsys.readouterr().out
    assert "sent / skipped / failed / retried: 12 / 0 / 0 / 0" in out
    assert "SMTP server received:   12 (12 distinct)" in out
    assert "duplicates:             0" in out
