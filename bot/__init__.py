"""The running gradtrack service."""

import os

# Opt in to python-telegram-bot's coming behaviour (RetryAfter.retry_after as a timedelta);
# bot.delivery reads either form, and no deprecation warning fills the logs.
os.environ.setdefault("PTB_TIMEDELTA", "1")
