"""Content: articles, article files, feeds, topics, site settings."""
