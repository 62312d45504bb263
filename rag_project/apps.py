from django.apps import AppConfig


class RagProjectConfig(AppConfig):
    name = "rag_project"
    verbose_name = "Citable"
