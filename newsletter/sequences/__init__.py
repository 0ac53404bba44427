"""Sequences: a series of mails after a reader enters, sent through the issues' ledger."""
