"""The Azure Function app: composes the admin ASGI app and the timer functions.

Who may call is decided by ADMIN_AUTH: `function-key` (default) has the host demand a
function key on every route except the dashboard's page and assets; `entra` puts the whole
app behind App Service authentication and reads roles from the signed-in principal.
Telemetry is configured once per worker, before any function runs: Application Insights
when APPLICATIONINSIGHTS_CONNECTION_STRING is set, the local store otherwise. Settings the
timers need, and the alert routes file, are checked here, so a bad one fails at start-up
with its name in the error.
"""

import azure.functions as func

from functions import (
    alert_redelivery,
    dashboard_shell,
    integration_restatement,
    paused_silences,
    queue_sampler,
)
from integration_monitoring.admin import Access
from integration_monitoring.alerts import load_routes
from integration_monitoring.app import create_app
from integration_monitoring.queues import sampler_settings
from integration_monitoring.schedules import TIMERS
from integration_monitoring.telemetry import configure_telemetry

configure_telemetry("integration-monitoring", prometheus=True)
sampler_settings()
for timer in TIMERS:
    timer.resolve()
load_routes()

access = Access.for_functions()
admin_app = create_app(access=access)
app = func.AsgiFunctionApp(app=admin_app, http_auth_level=func.AuthLevel.FUNCTION
                           if access.host_checks_keys else func.AuthLevel.ANONYMOUS)
if access.host_checks_keys:
    app.register_functions(dashboard_shell.blueprint(admin_app))
app.register_functions(queue_sampler.bp)
app.register_functions(alert_redelivery.bp)
app.register_functions(integration_restatement.bp)
app.register_functions(paused_silences.bp)
