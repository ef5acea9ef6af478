"""Fault, abuse and load tests (issue 6). See docs/reliability.md for what they inject."""
