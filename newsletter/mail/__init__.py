"""Building, rendering and sending mail."""
