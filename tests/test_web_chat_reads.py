"""What the web chat reads to show a page and to take a post: the page is read on every
answer (tests/test_webchat_bench.py's benchmark), so it reads the messages it shows, not the
bytes of a /mydata copy kept for a day; the copy is read when it is downloaded."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import event

from tests.harness import Harness
from tests.test_web_chat import onboard


async def test_the_page_shows_a_data_copy_without_reading_its_bytes(
    harness: Harness, web: str
) -> None:
    _graduate, g, _page = await onboard(harness, web, "en")
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        await g.command("mydata")
        engine = harness.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            page = await g.open()  # the page
            await g.command("help")  # a post, and the page after it
        finally:
            event.remove(engine, "before_cursor_execute", record)
        file = next(m for m in page.messages if m.kind == "file")
        assert file.file is not None  # the download link is shown
        reads = [s for s in statements if re.search(r"FROM web_message\b", s)]
        assert len(reads) >= 3, statements  # the page, the post's buttons, the page again
        for statement in reads:
            columns = statement.split("FROM", 1)[0]
            assert re.search(r"web_message\.file_data(?!\s+IS)", columns) is None, statement
        async with g.session.get(g.base + file.file) as response:
            assert response.status == 200
            assert json.loads(await response.text())["school"]["name"] == "Alfa College"
    finally:
        await g.close()
