"""Django's PostgreSQL backend with one change (`base.DatabaseWrapper`): ENGINE "rag_project.postgresql"."""
