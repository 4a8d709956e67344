"""Subscriber lifecycle ledger: an event-sourced record of every number's lifecycle."""
