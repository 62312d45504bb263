from django.urls import path

from search import openai_views

urlpatterns = [
    path("models", openai_views.ModelListApi.as_view(), name="openai-models"),
    path("models/<str:model_id>", openai_views.ModelDetailApi.as_view(), name="openai-model"),
    path("chat/completions", openai_views.ChatCompletionsApi.as_view(), name="openai-chat-completions"),
]
