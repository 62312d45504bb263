from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# The search fixtures (a small knowledge base in the active space) serve these tests too.
from tests.search.conftest import _clean_cache, kb, space  # noqa: F401


def scrape(client, **extra) -> str:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent: a counter that never moved has no line yet)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
