"""Timer trigger: restate every integration's lifecycle, on INTEGRATION_RESTATEMENT_SCHEDULE
(daily), so that status questions read back a day instead of the whole retention."""

import azure.functions as func

from integration_monitoring.schedules import INTEGRATION_RESTATEMENT

bp = func.Blueprint()


@bp.function_name(INTEGRATION_RESTATEMENT.name)
@bp.timer_trigger(arg_name="timer", schedule=INTEGRATION_RESTATEMENT.schedule,
                  use_monitor=False)
def restate_integrations(timer: func.TimerRequest) -> None:
    INTEGRATION_RESTATEMENT.run()
