"""Alembic environment of the sopforecast store: runs on the connection the caller opened
(:func:`sopforecast.store.schema.upgrade`), with its own version table so the store can
share a database with MLflow's."""

from alembic import context

from sopforecast.store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
