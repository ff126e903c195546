"""Timer trigger: keep one silence per paused integration, on PAUSED_SILENCE_SCHEDULE, so
that a paused integration's alerts notify no one until it is resumed."""

import azure.functions as func

from integration_monitoring.schedules import PAUSED_SILENCES

bp = func.Blueprint()


@bp.function_name(PAUSED_SILENCES.name)
@bp.timer_trigger(arg_name="timer", schedule=PAUSED_SILENCES.schedule, use_monitor=False)
def silence_paused_integrations(timer: func.TimerRequest) -> None:
    PAUSED_SILENCES.run()
