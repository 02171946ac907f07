from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "Taskdeck"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Import every installed app's tasks.py so its @task declarations register.
        autodiscover_modules("tasks")
        from tasks_app.queue import hooks
        from tasks_app.services import heartbeats

        hooks.on_worker_start(heartbeats.beat_worker_in_background)
