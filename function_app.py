"""The Azure Function app: composes the admin ASGI app and the timer functions.

Telemetry is configured once per worker, before any function runs: Application Insights
when APPLICATIONINSIGHTS_CONNECTION_STRING is set, the local store otherwise. Settings the
timers need are checked here, so a bad one fails at start-up with its name in the error.
"""

import azure.functions as func

from functions import queue_sampler
from integration_monitoring.app import create_app
from integration_monitoring.queues import sampler_settings
from integration_monitoring.schedules import TIMERS
from integration_monitoring.telemetry import configure_telemetry

configure_telemetry("integration-monitoring", prometheus=True)
sampler_settings()
for timer in TIMERS:
    timer.resolve()

app = func.AsgiFunctionApp(app=create_app(), http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(queue_sampler.bp)
