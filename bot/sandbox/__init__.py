"""A local Telegram Bot API server that behaves like Telegram, with virtual users.

The bot talks real HTTP to it, unchanged: with python-telegram-bot,
`Application.builder().token(token).base_url(f"{sandbox.url}/bot")` (PTB then calls
`POST {url}/bot{token}/{method}`; file downloads need `.base_file_url(f"{sandbox.url}/file/bot")`).
Nothing leaves the machine: no network access beyond loopback.

Python API (tests, `make run`)::

    from bot.sandbox import SandboxServer, RateLimits

    sandbox = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
    await sandbox.start()                    # sets sandbox.url = "http://127.0.0.1:PORT"
    token = sandbox.create_bot(username="gradtrack_bot", first_name="GradTrack")
    user = sandbox.create_user(token, first_name="Ana", language_code="es")
    await sandbox.send_text(token, user.id, "/start abc")     # or send_start(token, id, "abc")
    msgs = await sandbox.wait_for_bot_messages(token, user.id, count=1, timeout=10)
    await sandbox.press_button(token, user.id, msgs[-1].message_id, "lang:es")
    sandbox.block(token, user.id); sandbox.unblock(token, user.id)
    sandbox.transcript(token, user.id)       # list[TranscriptEntry]
    await sandbox.stop()                     # or: async with SandboxServer() as sandbox: ...

Wherever a bot is expected, its token, username or id works (or None when there is one).

SandboxServer(*, host="127.0.0.1", port=0, rate_limits=None, call_log_size=10_000,
              log_params=True, max_messages_per_chat=2000, max_pending_updates=100_000,
              callback_query_timeout=15.0, max_poll_timeout=50.0, webhook_retry_delay=0.2,
              allow_remote_webhooks=False, spec=None, state_file=None, mailbox_dir=None)

  state_file  where the world (users, bots, chats with their transcripts, update numbers) is
              kept across restarts: read by start(), written atomically about once a second
              when something changed and by stop(); save() writes it now. Numbers go on 1000
              above the last save, so a killed sandbox never hands out an update or user id
              twice. Uploaded files are not kept. `gradtrack run`/`serve` put it next to the
              database (bot.settings.Settings.sandbox_state_file).

  mailbox_dir the local mailbox (bot.mail.LocalMailbox) shown at /sandbox/mailbox: the
              e-mails `gradtrack run` sends without SMTP_URL (bot/sandbox/mailbox.py).

  lifecycle   await start() -> url; await stop(); async with; make_app() -> web.Application;
              mount(app) (adds routes to your app; set sandbox.url yourself); close()
  bots/users  create_bot(username="sandbox_bot", first_name="Sandbox Bot", *, token=None) -> str
              bot(ref) -> BotAccount
              create_user(bot=None, first_name="Test", *, last_name=None, username=None,
                          language_code="en", user_id=None) -> SandboxUser
              get_user(user_id) -> SandboxUser; users() -> list[SandboxUser]
  user acts   await send_text(bot, user_id, text) -> TranscriptEntry
              await send_start(bot, user_id, payload=None) -> TranscriptEntry  ("/start payload")
              await send_contact(bot, user_id, phone_number) -> TranscriptEntry
              await press_button(bot, user_id, message_id_or_entry, callback_data=None, *,
                                 text=None) -> callback query id
                  (SandboxError if that message has no such button)
              block(bot, user_id); unblock(bot, user_id); deactivate_user(user_id)
  reading     transcript(bot, user_id) -> list[TranscriptEntry]; bot_messages(bot, user_id)
              chat(bot, user_id) -> ChatState (blocked, started, reply_keyboard, last_action)
              await wait_for(bot, user_id, until=1 | predicate(entry), *, timeout=10.0,
                             edits=True) -> list[TranscriptEntry]
                  the bot's new (and, with edits, edited/deleted) messages since the previous
                  wait, up to the `until`-th or the first one `predicate` accepts
              await wait_for_bot_messages(bot, user_id, count=1, *, timeout=10.0)
                  the next `count` new bot messages (edits skipped)
              await wait_until(bot, user_id, condition(transcript), *, timeout=10.0)
              skip(bot, user_id): the next wait ignores everything so far
              A wait that times out raises SandboxTimeout (a TimeoutError) showing the
              transcript's tail. Unknown bots/users raise SandboxNotFound, other misuse
              SandboxError.
  bot side    calls(method=None, *, bot=None) -> list[CallRecord] (method, params, status,
              description); clear_calls(); file_bytes(bot, file_id) -> bytes;
              pending_updates(bot); push_update(bot, kind, payload); stats()
              redeliver(bot, update_id): a recent update again, same update_id
  knobs       rate_limits (get/set a RateLimits); faults: FaultInjector, e.g.
              faults.add("sendMessage", status=502, count=3), faults.hang("getUpdates",
              seconds=30), faults.add(status=500, count=None), faults.clear()

TranscriptEntry: kind ("message" | "button_press" | "callback_answer" | "event"), sender
("user" | "bot"), message_id, text, entities, caption, reply_markup (current), edited,
deleted, document, photo, media, callback_data, callback_query_id, show_alert, url, date;
`.content` (text or caption), `.buttons`, `.callback_datas`, `.to_json()`.

HTTP endpoints:
  GET|POST /bot{token}/{method}          Bot API (query, form, JSON, multipart parameters)
  GET      /file/bot{token}/{file_path}  file download after getFile
  GET      /chat[?bot=&user=&start=]     web chat page (start=X simulates t.me/bot?start=X)
  /sandbox/api/...                       user-side JSON API, listed in `bot.sandbox.web`
  GET      /sandbox/mailbox                the local mailbox (with mailbox_dir)

Standalone: `python -m bot.sandbox [--host 127.0.0.1] [--port 8081] [--username ...]
[--token ...] [--no-rate-limits]` prints the URL, the bot token and the chat page address.

Methods with real behaviour: getMe, getUpdates, setWebhook, deleteWebhook, getWebhookInfo,
sendMessage, sendDocument, sendPhoto, sendMediaGroup (photos/documents), copyMessage,
forwardMessage, editMessageText, editMessageCaption, editMessageReplyMarkup, deleteMessage(s),
answerCallbackQuery, sendChatAction, getFile, getChat, getChatMember, set/get/deleteMyCommands,
set/getChatMenuButton, set/getMyName/Description/ShortDescription, close, logOut (the token
then answers 401). Other spec methods are validated, then: Boolean-returning ones answer
true, other send* methods post a placeholder message ("[sendSticker]"; contact and location
keep their content), anything else answers 501 Not Implemented.

Telegram behaviour reproduced: parameters checked against the official Bot API 10.1 list
(`bot-api-10.1.json`: unknown method 404, missing/unknown/mistyped parameter 400, bad token
401); text/caption limits and parse modes; inline keyboard limits; "message is not
modified"; "chat not found" until the user starts the bot; 403 for blocked bots and
deactivated users; callback query expiry; flood limits (429 with retry_after); getUpdates
long polling, 409 conflicts, webhooks with secret token and in-order retries.
"""

from .errors import ApiError, SandboxError, SandboxNotFound, SandboxTimeout
from .faults import Fault, FaultInjector
from .ratelimit import RateLimits
from .server import CallRecord, SandboxServer, create_app, mount_sandbox
from .spec import ApiSpec, UploadedFile, load_spec
from .state import BotAccount, ChatState, SandboxUser, StoredFile, TranscriptEntry

__all__ = [
    "ApiError",
    "ApiSpec",
    "BotAccount",
    "CallRecord",
    "ChatState",
    "Fault",
    "FaultInjector",
    "RateLimits",
    "SandboxError",
    "SandboxNotFound",
    "SandboxServer",
    "SandboxTimeout",
    "SandboxUser",
    "StoredFile",
    "TranscriptEntry",
    "UploadedFile",
    "create_app",
    "load_spec",
    "mount_sandbox",
]
