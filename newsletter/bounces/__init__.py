"""Bounces and complaints: reports to events, DSN parsing, the SMTP receiver, the IMAP
mailbox, provider webhooks, and the figures."""
