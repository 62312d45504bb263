FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rag_project rag_project
COPY accounts accounts
COPY ingestion ingestion
COPY search search
COPY genapi genapi
COPY operations operations
COPY manage.py ./
# collectstatic needs settings but no database connection; the secret is a throwaway for this step only.
RUN pip install --no-cache-dir . \
 && DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=postgresql://x@localhost/x \
    python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "rag_project.wsgi", "--bind", "0.0.0.0:8000"]
