"""bench/webchat_bench.py at its smallest (2 people per channel, 2 answers each), so that the
benchmark keeps working as the web chat and the flows change: the sandbox and a `gradtrack
serve` process of their own, the people onboarding and answering on both channels. No timing
is checked: only that every action was answered, measured and counted."""

from __future__ import annotations

import pytest

from bench.webchat_bench import CHANNELS, PHASES, bench_database
from tests.databases import PostgresProvider


@pytest.mark.parametrize(
    ("kind", "together"), [("sqlite", False), ("sqlite", True), ("postgresql", False)]
)
async def test_the_web_chat_benchmark_runs_on_both_channels(
    kind: str, together: bool, postgres_provider: PostgresProvider | str
) -> None:
    pg_url = ""
    if kind == "postgresql":
        if isinstance(postgres_provider, str):
            pytest.skip(f"PostgreSQL runs skipped: {postgres_provider}")
        pg_url = postgres_provider.admin_url
    # Apart: 2 people on each channel in turn; together: 1 on each at once.
    people = 2
    rows = await bench_database(kind, pg_url, people, answers=2, think=0.0, together=together)

    assert [(r.channel, r.phase) for r in rows] == [(c, p) for c in CHANNELS for p in PHASES]
    each = 1 if together else people
    for r in rows:
        assert r.errors == 0, r
        # Onboarding: Start, the language, three consents; the questionnaire: /survey and two
        # answers; for each person.
        assert r.answers == each * (5 if r.phase == "onboarding" else 3), r
        assert r.database == kind and r.people == each
        assert r.mix == ("together" if together else "apart")
        # The service's side was seen: its requests or updates in the window, their SQL.
        wanted = {"web_post", "web_page"} if r.channel == "web" else {"update"}
        assert wanted <= set(r.handlers), r
        assert r.sql > 0, r
