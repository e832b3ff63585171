"""One module per schema revision; portable DDL only, so SQLite and PostgreSQL run them unchanged."""
