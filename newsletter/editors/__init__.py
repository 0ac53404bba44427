"""Editors: accounts, sessions, two-factor login, the login throttle, the audit log, editor mail."""
