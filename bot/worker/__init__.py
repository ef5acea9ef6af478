"""The GPU side of the bot: the generation loop and the events it reports (no Telegram here)."""
