"""Timer trigger: sample Service Bus queue and dead-letter depths on QUEUE_SAMPLE_SCHEDULE."""

import azure.functions as func

from integration_monitoring.schedules import QUEUE_SAMPLER

bp = func.Blueprint()


@bp.function_name(QUEUE_SAMPLER.name)
@bp.timer_trigger(arg_name="timer", schedule=QUEUE_SAMPLER.schedule, use_monitor=False)
def sample_queue_depths(timer: func.TimerRequest) -> None:
    QUEUE_SAMPLER.run()
