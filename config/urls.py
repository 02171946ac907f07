from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults

from tasks_app.api import problems

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("tasks_app.api.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Problem documents under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return problems.api_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problems.api_server_error(request)
    return defaults.server_error(request)
