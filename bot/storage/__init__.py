"""Durable state: the SQLite database, its migrations, jobs, users, the update inbox and app state."""
