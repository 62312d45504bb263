from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0004_collection_writers_document_updated_by"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="lease_renewed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
