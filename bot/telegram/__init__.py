"""Telegram plumbing: the API session, update intake, command menus, keyboards and filters."""
