// The Log Analytics workspace every query and alert reads, and the workspace-based Application
// Insights component the Function App (host and worker) sends its telemetry to. Application
// Insights keeps no data of its own: AppTraces and AppMetrics are tables of the workspace, so the
// workspace's retention is the telemetry's retention.
//
// API versions (stable; types in Azure/bicep-types-az):
//   Microsoft.OperationalInsights/workspaces@2025-02-01
//     generated/operationalinsights/microsoft.operationalinsights/2025-02-01/types.md
//   Microsoft.Insights/components@2020-02-02 (the newest stable version of components, and the
//     first with WorkspaceResourceId) generated/applicationinsights/microsoft.insights/2020-02-02

@description('Region of both resources.')
param location string

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Days the workspace keeps data: 30 at least (the trends and the integration status look back 30 days), 730 at most.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Accept telemetry only from Entra ID identities (the Function App\'s managed identity, with the Monitoring Metrics Publisher role); false also accepts the instrumentation key in the connection string.')
param disableLocalAuth bool = true

@description('Tags for both resources.')
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: disableLocalAuth
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

@description('Resource id of the workspace (the alert rules\' scope).')
output workspaceId string = workspace.id

@description('Name of the workspace.')
output workspaceName string = workspace.name

@description('The workspace\'s customer id (a GUID): LOG_ANALYTICS_WORKSPACE_ID for the admin queries.')
output workspaceCustomerId string = workspace.properties.customerId

@description('Name of the Application Insights component.')
output appInsightsName string = appInsights.name

@description('Resource id of the Application Insights component.')
output appInsightsId string = appInsights.id
