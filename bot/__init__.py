"""Telegram bot: aiogram handlers, a durable SQLite job queue and one GPU generation loop."""
