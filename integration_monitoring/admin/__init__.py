"""The admin API: the seed's five endpoints, answered by KQL on Log Analytics or locally."""

from ._access import Access, AccessDenied, Principal
from ._backends import (
    Answer,
    Backend,
    BackendUnavailable,
    LocalBackend,
    LogAnalyticsBackend,
    QueryFailed,
    TextBackend,
    backend_from_settings,
)
from ._budget import QueryBudget
from ._cache import SharedQueries
from ._dashboard import dashboard_router
from ._filters import FilterError, Filters, parse_filters
from ._paused import PausedUnknown, run_paused_silences, silence_paused
from ._restatement import run_restatement
from ._routes import PREFIX, Caller, admin_router, install_error_handlers
from ._service import AdminService
from ._silences_routes import routes_router, silences_router

__all__ = [
    "PREFIX",
    "Access",
    "AccessDenied",
    "AdminService",
    "Answer",
    "Backend",
    "BackendUnavailable",
    "Caller",
    "FilterError",
    "Filters",
    "LocalBackend",
    "LogAnalyticsBackend",
    "PausedUnknown",
    "Principal",
    "QueryBudget",
    "QueryFailed",
    "SharedQueries",
    "TextBackend",
    "admin_router",
    "backend_from_settings",
    "dashboard_router",
    "install_error_handlers",
    "parse_filters",
    "routes_router",
    "run_paused_silences",
    "run_restatement",
    "silence_paused",
    "silences_router",
]
