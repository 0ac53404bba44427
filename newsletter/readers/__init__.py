"""Readers: subscribe requests and confirmation, a reader's status, preferences, lists, privacy."""
