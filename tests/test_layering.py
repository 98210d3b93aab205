"""The layering of docs/architecture.md, checked: the flows (the graduates' and the staff's)
and their core know no channel. Importing them (in a fresh interpreter) loads neither
python-telegram-bot nor the web server, and their source names neither; only the channel
adapters do."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The flows (conversations/routes.py: every channel's, and the staff's) and what they stand on.
CHANNEL_FREE = (
    "conversations.routes",
    "conversations.staff",
    "conversations.news_compose",
    "conversations.reports",
    "conversations.channel",
    "conversations.prompting",
    "conversations.onboarding",
    "conversations.survey",
    "conversations.account",
    "conversations.notice",
    "conversations.rights",
    "conversations.invitations",
    "conversations.engine",
    "conversations.questionnaire",
    "bot.runtime",
    "bot.web_channel",
)
CHANNEL_LIBRARIES = ("telegram", "aiohttp", "jinja2")


def test_importing_the_flows_loads_no_channel_library() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CHANNEL_FREE!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {CHANNEL_LIBRARIES!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_no_flow_names_telegram_or_the_bot_client() -> None:
    """Not even lazily: no import of telegram in the flows, and no use of `rt.bot` (the
    Telegram client) — they speak through `Turn` and `Runtime.channel_for`."""
    found = []
    for name in CHANNEL_FREE:
        path = ROOT / (name.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [module or ""] + [a.name for a in node.names]
                if any(n.split(".")[0] in CHANNEL_LIBRARIES for n in names if n):
                    found.append((name, node.lineno))
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "bot"
                and isinstance(node.value, ast.Name)
                and node.value.id == "rt"
            ):
                found.append((name, node.lineno))
    # bot/runtime.py names the Bot class for type checking only.
    assert [f for f in found if f[0] != "bot.runtime"] == []
