"""Storage: models, engine, migrations and query functions."""
