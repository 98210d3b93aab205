"""The local mailbox in the sandbox: the e-mails `gradtrack run` would send without an SMTP
server (bot.mail.LocalMailbox keeps them as .eml files and an index), to read in a browser.

    GET /sandbox/mailbox                 the list (to, subject, date), newest first; a mail
                                         opens beside it
    GET /sandbox/api/mail                the index as JSON, newest first
    GET /sandbox/mail/{file}             one mail's HTML part (its plain text if it has none)

A mail's HTML is ours, but it is shown as untrusted content all the same: served with a
Content-Security-Policy that allows no script, no request to anywhere (its inline images are
turned into data: URLs) and makes it a sandboxed document, inside an iframe with the sandbox
attribute; its links open in a new tab (the web chat link, the unsubscribe page).
"""

from __future__ import annotations

import base64
import email
import json
import re
from email import policy
from email.message import EmailMessage
from html import escape
from pathlib import Path

from aiohttp import web

#: The names LocalMailbox gives its files: nothing else is ever opened.
FILE_RE = re.compile(r"^[0-9]{8}T[0-9]{12}-[0-9]+-[0-9]{6}\.eml$")
INDEX = "index.jsonl"

MAIL_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'"
)
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def entries(folder: Path) -> list[dict[str, str]]:
    """The mailbox's index, newest first (a torn last line skipped)."""
    path = folder / INDEX
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and FILE_RE.match(str(entry.get("file", ""))):
            found.append({k: str(v) for k, v in entry.items()})
    return list(reversed(found))


def mail_html(data: bytes) -> str:
    """The HTML to show for one message: its HTML part with `cid:` images inlined as data:
    URLs and links opening in a new tab, or its plain text in a <pre>."""
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("html", "plain"))
    if body is None:
        return "<p>(empty message)</p>"
    content = body.get_content()
    if body.get_content_type() != "text/html":
        return f'<pre style="white-space:pre-wrap">{escape(content)}</pre>'
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_maintype() == "image":
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            data_url = f"data:{part.get_content_type()};base64,{base64.b64encode(payload).decode()}"
            content = content.replace(f"cid:{cid.strip('<>')}", data_url)
    return content.replace("<head>", '<head><base target="_blank">', 1)


def _page(folder: Path, chosen: str | None) -> str:
    rows = []
    for entry in entries(folder):
        name = entry["file"]
        current = ' aria-current="true"' if name == chosen else ""
        rows.append(
            f'<li><a href="?mail={escape(name)}"{current}><b>{escape(entry.get("subject", ""))}'
            f"</b><br><small>{escape(entry.get('to', ''))} · {escape(entry.get('date', ''))}"
            "</small></a></li>"
        )
    listing = "\n".join(rows) or '<li class="empty">No mails yet.</li>'
    viewer = (
        f'<iframe title="The mail" src="/sandbox/mail/{escape(chosen)}" '
        'sandbox="allow-popups allow-popups-to-escape-sandbox"></iframe>'
        if chosen
        else '<p class="empty">Choose a mail.</p>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Local mailbox · gradtrack sandbox</title>
<style>
body {{ margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #111; background: #eef1f4; }}
header {{ padding: 10px 16px; background: #fff; border-bottom: 1px solid #dfe3e7; }}
h1 {{ font-size: 18px; margin: 0; }} header p {{ margin: 2px 0 0; color: #555; }}
.cols {{ display: flex; flex-wrap: wrap; gap: 12px; padding: 12px; }}
nav {{ flex: 1 1 260px; max-width: 380px; }}
ul {{ list-style: none; margin: 0; padding: 0; }}
li a {{ display: block; padding: 8px 10px; margin-bottom: 6px; border-radius: 8px; background: #fff;
       color: #111; text-decoration: none; overflow-wrap: anywhere; }}
li a[aria-current] {{ outline: 2px solid #1d5fbf; }}
small {{ color: #555; }}
section {{ flex: 3 1 360px; min-height: 70vh; }}
iframe {{ width: 100%; height: 80vh; border: 0; border-radius: 8px; background: #fff; }}
.empty {{ color: #555; }}
</style></head><body>
<header><h1>Local mailbox</h1>
<p>No SMTP_URL is set: the e-mails gradtrack sends are kept here ({escape(str(folder))}).</p>
</header>
<div class="cols"><nav aria-label="Mails"><ul>
{listing}
</ul></nav>
<section>{viewer}</section></div>
</body></html>"""


def add_mailbox_routes(app: web.Application, folder: Path) -> None:
    """The mailbox's routes, reading `folder` (bot.settings.Settings.mailbox_dir)."""

    async def page(request: web.Request) -> web.StreamResponse:
        chosen = request.query.get("mail")
        if chosen is not None and not FILE_RE.match(chosen):
            chosen = None
        return web.Response(
            text=_page(folder, chosen),
            content_type="text/html",
            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"},
        )

    async def listing(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "result": entries(folder)})

    async def one(request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        path = folder / name
        if not FILE_RE.match(name) or not path.is_file():
            return web.Response(status=404, text="no such mail\n")
        return web.Response(
            text=mail_html(path.read_bytes()),
            content_type="text/html",
            headers={
                "Content-Security-Policy": MAIL_CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    app.router.add_get("/sandbox/mailbox", page)
    app.router.add_get("/sandbox/api/mail", listing)
    app.router.add_get("/sandbox/mail/{file}", one)


__all__ = ["add_mailbox_routes", "entries", "mail_html"]
