"""Timer trigger: send again the alert deliveries waiting in the outbox, on
ALERT_REDELIVERY_SCHEDULE."""

import azure.functions as func

from integration_monitoring.schedules import ALERT_REDELIVERY

bp = func.Blueprint()


@bp.function_name(ALERT_REDELIVERY.name)
@bp.timer_trigger(arg_name="timer", schedule=ALERT_REDELIVERY.schedule, use_monitor=False)
def redeliver_alerts(timer: func.TimerRequest) -> None:
    ALERT_REDELIVERY.run()
