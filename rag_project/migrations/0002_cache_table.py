from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # The database cache backend (the default) needs its table; a no-op for other backends.
    call_command("createcachetable", verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("rag_project", "0001_initial")]
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
