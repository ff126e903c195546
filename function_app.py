"""The Azure Function app: composes the admin ASGI app (and, later, timers and the alert relay).

Telemetry is configured once per worker, before any function runs: Application Insights
when APPLICATIONINSIGHTS_CONNECTION_STRING is set, the local store otherwise.
"""

import azure.functions as func

from integration_monitoring.app import create_app
from integration_monitoring.telemetry import configure_telemetry

configure_telemetry("integration-monitoring", prometheus=True)

app = func.AsgiFunctionApp(app=create_app(), http_auth_level=func.AuthLevel.FUNCTION)
