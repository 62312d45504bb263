from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Metrics, structured logs with request ids, provider usage and cost, ingestion health, backups."""

    name = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Signal receivers and the provider-usage hook, in every process that sets Django up (web,
        # Celery worker and its children, manage.py).
        from operations import celery_signals, provider_usage, search_metrics  # noqa: F401

        provider_usage.install()
