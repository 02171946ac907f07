from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from tasks_app.api import problems, schema, views  # schema also registers the key schemes
from tasks_app.api.permissions import CanRead


class Router(SimpleRouter):
    """The contract's paths have no trailing slash; one is tolerated. No format suffixes (".json"):
    task ids may contain dots."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("tasks", views.TaskViewSet, basename="task")
router.register("runs", views.RunViewSet, basename="run")

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("events", views.EventsView.as_view(), name="events"),
    path("problems/", problems.problem_index, name="problem-index"),
    path("problems/<slug:slug>", problems.problem_page, name="problem"),
    # Like every route but health, the schema and its viewers need a caller with tasks:read.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[CanRead]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[CanRead]), name="docs"),
    path("redoc/", schema.RedocView.as_view(url_name="schema", permission_classes=[CanRead]), name="redoc"),
    path("", include(router.urls)),
]
