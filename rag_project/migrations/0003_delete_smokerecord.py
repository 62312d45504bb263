from django.db import migrations


class Migration(migrations.Migration):
    # The smoke task's table: the Celery smoke test now runs a real ingestion task instead.
    dependencies = [("rag_project", "0002_cache_table")]
    operations = [migrations.DeleteModel(name="SmokeRecord")]
