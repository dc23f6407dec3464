"""The web chat: a channel of the core for browsers (bot/web/app.py), with its page and script beside it."""
