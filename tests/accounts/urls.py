"""A URLconf of small views guarded by each scope, so scope rules are tested through real DRF requests."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import scope_required
from accounts.throttling import ApiKeyRateThrottle


def scoped_view(scope: str):
    class View(APIView):
        permission_classes = [scope_required(scope)]

        def post(self, request):
            return Response({"ok": scope})

    return View.as_view()


class ThrottledView(APIView):
    throttle_classes = [ApiKeyRateThrottle]

    def get(self, request):
        return Response({"ok": True})


class ThrottledAskView(ThrottledView):
    throttle_scope = "ask"


urlpatterns = [
    *[path(f"scoped/{scope}", scoped_view(scope)) for scope in ("search", "ask", "ingest", "admin")],
    path("throttled", ThrottledView.as_view()),
    path("throttled-ask", ThrottledAskView.as_view()),
]
