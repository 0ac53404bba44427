"""Outgoing webhooks: ``events`` (the one door other modules call), ``endpoints``,
``deliveries`` (the one writer of a delivery's status) and ``sender`` (the HTTP POST)."""
