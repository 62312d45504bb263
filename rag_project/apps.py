from django.apps import AppConfig
from django.conf import settings


class RagProjectConfig(AppConfig):
    name = "rag_project"
    verbose_name = "Citable"

    def ready(self) -> None:
        if settings.CELERY_BROKER_URL.startswith("sqla+"):
            # The SQLAlchemy transport polls the database, once a second by default: up to a second
            # of queueing latency per task. Its options all go to create_engine(), so set it here.
            from kombu.transport.sqlalchemy import Transport

            Transport.polling_interval = 0.2
