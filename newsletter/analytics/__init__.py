"""Click analytics: tracked links, the human-or-bot verdict, click records and reports."""
