"""Citable's client for the Scaleway Generative APIs (OpenAI-compatible), and its local stand-in."""

from genapi.client import GenAPIClient, get_client, reset_client
from genapi.config import GenAPIConfig
from genapi.errors import (
    AuthenticationError,
    BadResponseError,
    ContextTooLongError,
    GenAPIError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from genapi.types import EmbeddingsResult, RerankHit, Usage
from genapi.usage import (
    AttemptRecord,
    UsageRecord,
    add_attempt_hook,
    add_usage_hook,
    remove_attempt_hook,
    remove_usage_hook,
)

__all__ = [
    "AttemptRecord",
    "AuthenticationError",
    "BadResponseError",
    "MalformedResponseError",
    "ContextTooLongError",
    "EmbeddingsResult",
    "GenAPIClient",
    "GenAPIConfig",
    "GenAPIError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "PermissionDeniedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RerankHit",
    "Usage",
    "UsageRecord",
    "add_attempt_hook",
    "add_usage_hook",
    "get_client",
    "remove_attempt_hook",
    "remove_usage_hook",
    "reset_client",
]
