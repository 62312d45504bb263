from django.urls import path

from search.apis import AskApi, PassageApi, SearchApi
from search.conversation_apis import (
    ConversationAskApi,
    ConversationDetailApi,
    ConversationListApi,
    FeedbackApi,
)

urlpatterns = [
    path("search", SearchApi.as_view(), name="api-search"),
    path("ask", AskApi.as_view(), name="api-ask"),
    path("conversations", ConversationListApi.as_view(), name="api-conversations"),
    path("conversations/<int:conversation_id>", ConversationDetailApi.as_view(), name="api-conversation"),
    path(
        "conversations/<int:conversation_id>/ask", ConversationAskApi.as_view(), name="api-conversation-ask"
    ),
    path("feedback", FeedbackApi.as_view(), name="api-feedback"),
    path(
        "documents/<int:document_id>/chunks/<int:chunk_id>", PassageApi.as_view(), name="api-document-chunk"
    ),
]
