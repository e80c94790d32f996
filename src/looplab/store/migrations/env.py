"""Alembic environment: looplab runs migrations itself, on the connection it hands over."""

from alembic import context

from looplab.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("looplab migrations run through looplab.store.engine.migrate(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
