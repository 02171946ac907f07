"""What the services tests share: triggers as the API and the scheduler make them, a run's events."""
from tasks_app import services
from tasks_app.models import Event, RunTrigger


def api_trigger(task, **kwargs):
    return services.trigger(task, source=RunTrigger.API, requested_by="key:test", **kwargs)


def schedule_trigger(task, **kwargs):
    return services.trigger(task, source=RunTrigger.SCHEDULE, requested_by="schedule", **kwargs)


def events_of(run):
    return list(Event.objects.filter(run_id=run.id).values_list("name", flat=True))
