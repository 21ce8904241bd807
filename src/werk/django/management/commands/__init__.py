"""werk's management commands: ``werk_worker``."""
