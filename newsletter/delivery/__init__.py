"""Delivery: the ledger, the send loop, the transactional outbox, the deliverability guard."""
