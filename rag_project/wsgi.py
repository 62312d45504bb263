import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_project.settings")
application = get_wsgi_application()

# Start-up objects out of the collector's way (rag_project/gc_tuning.py).
from rag_project.gc_tuning import startup_objects_freeze  # noqa: E402

startup_objects_freeze()

# Opt-in heap snapshots for leak hunting (CITABLE_TRACEMALLOC_DIR); nothing happens without it.
from operations.memory_trace import start_from_env  # noqa: E402

start_from_env()
