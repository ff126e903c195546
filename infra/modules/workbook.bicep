// An Azure Workbook (Microsoft.Insights/workbooks) with the dashboard's components for teams that
// live in the portal: active alerts, system overview, integration health, sync activity, error
// monitoring and performance, with the dashboard's filters as workbook parameters.
//
// Its queries are the admin API's own KQL files, not copies: loadTextContent() reads
// integration_monitoring/queries/<name>.kql and _common.kql at build time, and each query item is
//   prelude (below) + `let _status = "...";` + _common.kql + <name>.kql
// which is how the API composes them (integration_monitoring/queries/__init__.py render()), with
// the let values taken from the workbook parameters instead of the request. The layout (which
// file in which section, its title and chart) is infra/workbook/dashboard.json.
//
// API version 2023-06-01 is the newest stable one for workbooks (bicep-types-az
// generated/applicationinsights/microsoft.insights/2023-06-01/types.md).

@description('Region of the workbook.')
param location string

@description('Resource id of the Log Analytics workspace the queries run on.')
param workspaceId string

@description('Name shown in the portal\'s workbook gallery.')
param displayName string = 'Integration monitoring'

@description('Tags for the workbook.')
param tags object = {}

var layout = loadJsonContent('../workbook/dashboard.json')

var common = loadTextContent('../../integration_monitoring/queries/_common.kql')

// The integrations' lifecycle, which the status question's first line says it uses: joined
// before it, as the API does.
var lifecycle = loadTextContent('../../integration_monitoring/queries/_lifecycle.kql')

var kql = {
  adapter_latency: loadTextContent('../../integration_monitoring/queries/adapter_latency.kql')
  alerts: loadTextContent('../../integration_monitoring/queries/alerts.kql')
  duration_by_integration: loadTextContent('../../integration_monitoring/queries/duration_by_integration.kql')
  duration_trend: loadTextContent('../../integration_monitoring/queries/duration_trend.kql')
  error_rate_trend: loadTextContent('../../integration_monitoring/queries/error_rate_trend.kql')
  errors_by_integration: loadTextContent('../../integration_monitoring/queries/errors_by_integration.kql')
  integration_status: '${lifecycle}${loadTextContent('../../integration_monitoring/queries/integration_status.kql')}'
  job_counts: loadTextContent('../../integration_monitoring/queries/job_counts.kql')
  queue_depth_trend: loadTextContent('../../integration_monitoring/queries/queue_depth_trend.kql')
  recent_jobs: loadTextContent('../../integration_monitoring/queries/recent_jobs.kql')
  record_totals: loadTextContent('../../integration_monitoring/queries/record_totals.kql')
  running_jobs: loadTextContent('../../integration_monitoring/queries/running_jobs.kql')
  throughput_trend: loadTextContent('../../integration_monitoring/queries/throughput_trend.kql')
  top_error_types: loadTextContent('../../integration_monitoring/queries/top_error_types.kql')
  top_integrations: loadTextContent('../../integration_monitoring/queries/top_integrations.kql')
}

// The let values every query file expects (the admin API's Filters.values() in
// integration_monitoring/admin/_filters.py), from the workbook parameters. In a KQL item the
// workbook writes {TimeRange:start} and {TimeRange:end} as datetime values and {TimeRange:grain}
// as a timespan; :escapejson escapes quotes and backslashes as a KQL string literal needs. The
// lookback (status changes, alerts) is the API's LOOKBACK of 30 days. The bucket is the
// workbook's grain for the range where the API picks from 1m..1d for at most 96 points.
// Workbook readers are scoped by Azure RBAC on the workspace, so every tenant is in scope.
// _status is set per tile, after this prelude.
var prelude = '''
let _since = {TimeRange:start};
let _until = {TimeRange:end};
let _lookback_since = _until - 30d;
let _bucket = {TimeRange:grain};
let _tenant = "{Tenant:escapejson}";
let _integration = "{Integration:escapejson}";
let _adapter = "{Adapter:escapejson}";
let _entity = "{Entity:escapejson}";
let _q = "{Search:escapejson}";
let _all_tenants = true;
let _tenants = dynamic([]);
'''

// Tiles over the range take the TimeRange parameter as their time context (durationMs 0 plus
// timeContextFromParameter, as the workbook editor writes it); lookback tiles need the 30 days
// before the range as well, so they get a fixed 90-day context and filter by time themselves.
var lookbackMs = 7776000000

// A for-expression may only be a declaration's whole value (the compiler's BCP138), so the
// tiles are built as a list of [header?, query] pairs first and flattened after.
var tileGroups = [
  for (tile, i) in layout.tiles: concat(
    empty(tile.header) ? [] : [
      {
        type: 1
        name: 'header-${i}'
        content: {
          json: tile.header
        }
      }
    ],
    [
      {
        type: 3
        name: 'query-${i}-${tile.query}'
        content: union(
          {
            version: 'KqlItem/1.0'
            title: tile.title
            query: '${prelude}let _status = "${tile.status}";\n${common}${kql[tile.query]}'
            size: 0
            showExportToExcel: true
            queryType: 0
            resourceType: 'microsoft.operationalinsights/workspaces'
            crossComponentResources: [
              workspaceId
            ]
            visualization: tile.visualization
          },
          tile.lookback ? {
            timeContext: {
              durationMs: lookbackMs
            }
          } : {
            timeContext: {
              durationMs: 0
            }
            timeContextFromParameter: 'TimeRange'
          }
        )
      }
    ]
  )
]

var tileItems = flatten(tileGroups)

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat(
    [
      {
        type: 1
        name: 'intro'
        content: {
          json: '# Integration monitoring\nThe admin dashboard\'s components, from the same KQL files as the admin API (integration_monitoring/queries). Empty filters match everything.'
        }
      }
      {
        type: 9
        name: 'parameters'
        content: {
          version: 'KqlParameterItem/1.0'
          crossComponentResources: [
            workspaceId
          ]
          parameters: layout.parameters
          style: 'pills'
          queryType: 0
          resourceType: 'microsoft.operationalinsights/workspaces'
        }
      }
    ],
    tileItems
  )
  isLocked: false
  fallbackResourceIds: [
    workspaceId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'integration-monitoring-workbook', displayName) // must be a GUID
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: workspaceId
    serializedData: string(workbookContent)
  }
}

@description('Resource id of the workbook.')
output id string = workbook.id
