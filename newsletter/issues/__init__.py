"""Issues: the issue lifecycle, personal copies, the schedule, the archive, reports."""
