// Role assignments of the Function App's managed identity on the resources of this resource
// group: what the code and the Functions host need, nothing broader. Each assignment is named
// guid(scope, principal, role), so redeploying finds the same one.
//
//   Log Analytics Reader, on the workspace: the admin API's KQL queries
//     (azure-monitor-query LogsQueryClient with DefaultAzureCredential).
//   Storage Blob Data Owner, on the storage account: the host's AzureWebJobsStorage by identity
//     (timer trigger leases, host keys) and the Flex Consumption deployment container. Queue Data
//     Contributor is not given: the app has only HTTP and timer triggers.
//   Storage Table Data Contributor, on the alert outbox table alone: the relay writes the
//     deliveries it could not make there and the redelivery timer reads, updates and deletes them
//     (azure-data-tables with DefaultAzureCredential).
//   Monitoring Metrics Publisher, on Application Insights (when enabled): telemetry ingestion with
//     Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING), which the host and the Python
//     exporter (azure-monitor-opentelemetry-exporter) both honour.
//   Monitoring Contributor, on this resource group (when enabled): each silence becomes an alert
//     processing rule (Microsoft.AlertsManagement/actionRules) created, replaced and deleted here
//     (integration_monitoring/alerts/_processing_rules.py). Of the built-in monitoring roles it is
//     the only one with Microsoft.AlertsManagement/actionRules/* (Monitoring Reader only reads),
//     and no narrower built-in role was found. It also lets the app change this
//     group's alert rules, action groups and diagnostic settings; a custom role with
//     actionRules/* alone would be narrower, at the price of a role definition to deploy.
//     https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/monitor#monitoring-contributor
//     The rule is a resource of this group, so the role cannot be scoped to the workspace.
// The Service Bus role is in rbac-servicebus.bicep, deployed to the namespace's resource group.
//
// Built-in role ids: Microsoft Learn "Azure built-in roles". API versions: roleAssignments
// 2022-04-01 (stable, bicep-types-az generated/authorization/microsoft.authorization/2022-04-01);
// the `existing` references use the versions their own modules deploy with.

@description('Principal (object) id of the Function App\'s managed identity.')
param principalId string

@description('Name of the Log Analytics workspace the admin queries read.')
param workspaceName string

@description('Name of the Function App\'s storage account.')
param storageAccountName string

@description('Name of the alert outbox table in that account.')
param outboxTableName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Give the identity Monitoring Metrics Publisher on Application Insights (telemetry ingestion with Entra ID).')
param assignMetricsPublisher bool = true

@description('Give the identity Monitoring Contributor on this resource group, to keep an alert processing rule for each silence.')
param assignAlertProcessingRules bool = true

var roles = {
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  monitoringContributor: '749f88d5-cbae-40b8-bcfc-e573ddc772fa'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' existing = {
  parent: storage
  name: 'default'
}

resource outboxTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' existing = {
  parent: tableService
  name: outboxTableName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource workspaceReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roles.logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Admin API: KQL queries on the workspace'
  }
}

resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Functions host storage and the deployment container, by identity'
  }
}

resource outboxTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(outboxTable.id, principalId, roles.storageTableDataContributor)
  scope: outboxTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Alert relay outbox: queued deliveries, by identity'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignMetricsPublisher) {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Telemetry ingestion with Entra ID'
  }
}

// No `scope`: an extension resource without one applies to the deployment's scope, this group.
resource processingRulesWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (assignAlertProcessingRules) {
  name: guid(resourceGroup().id, principalId, roles.monitoringContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'Silences: alert processing rules in this resource group'
  }
}
