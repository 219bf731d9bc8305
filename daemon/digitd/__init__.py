"""digitd: reads handwritten digits from scanned images (inbox/ -> outbox/)."""

__version__ = "0.1.0"
