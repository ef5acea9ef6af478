"""Durable state: the database (SQLite, or PostgreSQL with ``DATABASE_URL``: ``engine.py``), its
migrations, jobs, users, the update inbox and app state."""
