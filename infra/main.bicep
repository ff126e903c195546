// The whole stack for one environment, into one resource group:
//
//   az group create -n <rg> -l <region>
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//
// (or `azd up`, which uses the same files; see the README, "Deploying to Azure"). It brings up:
//   - a Log Analytics workspace (retention a parameter, 30 days at least) and workspace-based
//     Application Insights (monitoring.bicep);
//   - a storage account reached by identity only, with the alert relay's outbox table
//     (storage.bicep);
//   - a user-assigned managed identity, and the Function App on a Flex Consumption plan running
//     as that identity, with every app setting the code reads (function-app.bicep), optionally
//     behind App Service authentication (Entra ID);
//   - role assignments for that identity (rbac.bicep, rbac-servicebus.bicep), created before the
//     app so that it starts with the access it needs;
//   - the Service Bus namespace the sampler reads: an existing one, or a new one with its queues
//     when createServiceBus is true (servicebus.bicep);
//   - the action groups and one log search alert rule per entry of integration_monitoring/alerts/rules.json
//     (action-groups.bicep, alert-rules.bicep, as infra/alerts.bicep deploys them alone);
//   - an Azure Workbook with the dashboard's components, from the same KQL files (workbook.bicep).
// No secret has a default or lands in an output: they come in as secure parameters (from the
// environment through main.bicepparam) and go to app settings and the relay's webhook address.

targetScope = 'resourceGroup'

// --- Naming and placement ---------------------------------------------------------------------

@description('Prefix of every resource name, e.g. "intmon-prod" (letters, digits, hyphens).')
@minLength(2)
@maxLength(20)
param namePrefix string

@description('Region of every resource (one that offers Flex Consumption: az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Tags for every resource.')
param tags object = {}

@description('Function App name; empty derives "<namePrefix>-<unique suffix>".')
param functionAppName string = ''

@description('Storage account name; empty derives one from the prefix and a unique suffix.')
param storageAccountName string = ''

// --- Monitoring -------------------------------------------------------------------------------

@description('Days the workspace keeps telemetry: at least 30 (trends and integration status look back 30 days).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Send telemetry to Application Insights with Entra ID only (no instrumentation key); the identity gets Monitoring Metrics Publisher.')
param appInsightsEntraAuth bool = true

@description('LOG_ANALYTICS_ENDPOINT for sovereign clouds; empty for the public cloud.')
param logAnalyticsEndpoint string = ''

// --- Service Bus ------------------------------------------------------------------------------

@description('Create the Service Bus namespace and its queues (true), or use an existing namespace (false).')
param createServiceBus bool = false

@description('Name of the Service Bus namespace the sampler reads (created when createServiceBus is true).')
@minLength(6)
@maxLength(50)
param serviceBusNamespaceName string

@description('Resource group of the namespace; this deployment\'s own by default. It must exist.')
param serviceBusResourceGroup string = resourceGroup().name

@description('Queues whose depth and dead-letter depth are sampled (created when createServiceBus is true).')
@minLength(1)
param serviceBusQueues array

@description('Tier of a namespace this deployment creates.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('QUEUE_SAMPLE_SCHEDULE: six-field NCRONTAB of the queue depth timer.')
param queueSampleSchedule string = '0 * * * * *'

@description('INTEGRATION_RESTATEMENT_SCHEDULE: six-field NCRONTAB of the daily timer that restates every integration\'s lifecycle, so that status questions read back a day instead of the whole retention.')
param integrationRestatementSchedule string = '0 15 0 * * *'

@description('PAUSED_SILENCE_SCHEDULE: six-field NCRONTAB of the timer that silences the alerts of paused integrations.')
param pausedSilenceSchedule string = '0 */5 * * * *'

// --- Alerts and the relay ---------------------------------------------------------------------

@description('Shared secret between the action groups and the relay (ALERT_RELAY_SECRET).')
@secure()
param relaySecret string

@description('Value of the Functions host key "alert-relay" that the action groups send as code= (the HTTP functions use auth level FUNCTION). Register the same value on the app after publishing (README, "Deploying to Azure"); empty sends no key.')
@secure()
param relayFunctionKey string = ''

@description('Slack incoming webhook address for the relay (SLACK_WEBHOOK_URL); empty disables Slack.')
@secure()
param slackWebhookUrl string = ''

@description('ALERT_ROUTES_FILE: a routes file inside the published package (docs/alert-routing.md); empty uses the shipped one.')
param alertRoutesFile string = ''

@description('The secrets of the receivers a routes file adds, each an app setting: {"SLACK_WEBHOOK_URL_PAYMENTS": "https://hooks.slack.com/...", "PAGERDUTY_ROUTING_KEY_TEAM_B": "..."}. Given here they survive a redeployment, which rewrites every app setting.')
@secure()
param alertReceiverSecrets object = {}

@description('PagerDuty Events API v2 routing key (PAGERDUTY_ROUTING_KEY); empty disables PagerDuty.')
@secure()
param pagerDutyRoutingKey string = ''

@description('PAGERDUTY_EVENTS_URL: PagerDuty Events API v2 endpoint.')
param pagerDutyEventsUrl string = 'https://events.pagerduty.com/v2/enqueue'

@description('Addresses that receive the critical alerts by email.')
param alertEmails array = []

@description('Base address that serves the runbooks (docs/runbooks/<id>.md is appended), for the alert rules and RUNBOOK_BASE_URL; empty: the Function app, which serves them itself.')
param runbookBaseUrl string = ''

@description('Resource id of an Azure Monitor workspace (managed Prometheus) that receives /metrics; set it to deploy the Prometheus rule groups. Empty: none.')
param azureMonitorWorkspaceId string = ''

@description('DASHBOARD_BASE_URL for links in alert messages; empty uses https://<app>.azurewebsites.net.')
param dashboardBaseUrl string = ''

@description('Whether the alert rules are evaluated.')
param alertsEnabled bool = true

@description('Create the alert rules without Azure Monitor checking their queries against the workspace. The workspace this stack creates has no AppTraces or AppMetrics table until the first telemetry arrives, and the check would refuse every rule; set false to have the queries checked when the workspace already holds telemetry (a redeployment).')
param skipQueryValidation bool = true

@description('ALERT_REDELIVERY_HOURS: how long the relay keeps retrying a Slack or PagerDuty delivery that failed before giving it up.')
@minValue(1)
@maxValue(720)
param alertRedeliveryHours int = 24

@description('ALERT_REDELIVERY_SCHEDULE: six-field NCRONTAB of the timer that sends queued alert deliveries again.')
param alertRedeliverySchedule string = '30 * * * * *'

// --- Telemetry settings -----------------------------------------------------------------------

@description('TELEMETRY_STDOUT: also print every event as a JSON line (Azure keeps no console output here).')
param telemetryStdout bool = false

@description('TELEMETRY_CARDINALITY_LIMIT: label sets kept per metric per process.')
param telemetryCardinalityLimit int = 2000

// --- Scale ------------------------------------------------------------------------------------

@description('Most instances the Function App scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// --- App Service authentication (optional) ----------------------------------------------------

@description('Require Entra ID sign-in in front of the app (App Service authentication) instead of function keys; the relay stays reachable with its secret.')
param enableAuth bool = false

@description('Client (application) id of the app registration for sign-in (required with enableAuth).')
param authClientId string = ''

@description('Client secret of that app registration; empty signs in with ID tokens only.')
@secure()
param authClientSecret string = ''

@description('Object ids of the Entra ID groups allowed to sign in; empty allows the whole tenant.')
param authAllowedGroupIds array = []

@description('Claim listing the tenants a Monitoring.Reader may read (for example a directory extension attribute).')
param authTenantClaim string = 'tenants'

// --- Names ------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix))
var appName = empty(functionAppName) ? '${namePrefix}-${take(token, 8)}' : functionAppName
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var storageName = empty(storageAccountName) ? take('st${take(compactPrefix, 12)}${token}', 24) : storageAccountName
var deploymentContainerName = 'app-package-${take(toLower(appName), 40)}'

// --- Resources --------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: '${namePrefix}-id'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: '${namePrefix}-monitoring'
  params: {
    location: location
    workspaceName: '${namePrefix}-logs'
    appInsightsName: '${namePrefix}-appi'
    retentionInDays: logRetentionDays
    disableLocalAuth: appInsightsEntraAuth
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: '${namePrefix}-storage'
  params: {
    location: location
    name: storageName
    deploymentContainerName: deploymentContainerName
    tags: tags
  }
}

module serviceBus 'modules/servicebus.bicep' = if (createServiceBus) {
  name: '${namePrefix}-servicebus'
  scope: resourceGroup(serviceBusResourceGroup)
  params: {
    location: location
    name: serviceBusNamespaceName
    queues: serviceBusQueues
    sku: serviceBusSku
    tags: tags
  }
}

module rbac 'modules/rbac.bicep' = {
  name: '${namePrefix}-rbac'
  params: {
    principalId: identity.properties.principalId
    workspaceName: monitoring.outputs.workspaceName
    storageAccountName: storage.outputs.name
    outboxTableName: storage.outputs.outboxTableName
    appInsightsName: monitoring.outputs.appInsightsName
    assignMetricsPublisher: appInsightsEntraAuth
  }
}

module serviceBusRbac 'modules/rbac-servicebus.bicep' = {
  name: '${namePrefix}-rbac-servicebus'
  scope: resourceGroup(serviceBusResourceGroup)
  params: {
    principalId: identity.properties.principalId
    namespaceName: serviceBusNamespaceName
    queues: serviceBusQueues
  }
  dependsOn: [
    serviceBus // when created here, the namespace and its queues come first
  ]
}

module functionApp 'modules/function-app.bicep' = {
  name: '${namePrefix}-function-app'
  params: {
    location: location
    name: appName
    planName: '${namePrefix}-plan'
    tags: tags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    appInsightsEntraAuth: appInsightsEntraAuth
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceCustomerId
    logAnalyticsEndpoint: logAnalyticsEndpoint
    serviceBusFullyQualifiedNamespace: serviceBusRbac.outputs.fullyQualifiedNamespace
    serviceBusQueues: serviceBusQueues
    queueSampleSchedule: queueSampleSchedule
    alertRedeliverySchedule: alertRedeliverySchedule
    integrationRestatementSchedule: integrationRestatementSchedule
    pausedSilenceSchedule: pausedSilenceSchedule
    alertRedeliveryHours: alertRedeliveryHours
    relaySecret: relaySecret
    slackWebhookUrl: slackWebhookUrl
    pagerDutyRoutingKey: pagerDutyRoutingKey
    pagerDutyEventsUrl: pagerDutyEventsUrl
    dashboardBaseUrl: dashboardBaseUrl
    runbookBaseUrl: runbookBaseUrl
    alertRuleNamePrefix: namePrefix // alert-rules.bicep names each rule "<namePrefix>-<id>"
    alertRoutesFile: alertRoutesFile
    alertReceiverSecrets: alertReceiverSecrets
    telemetryStdout: telemetryStdout
    telemetryCardinalityLimit: telemetryCardinalityLimit
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    enableAuth: enableAuth
    authClientId: authClientId
    authClientSecret: authClientSecret
    authAllowedGroupIds: authAllowedGroupIds
    authTenantClaim: authTenantClaim
  }
  dependsOn: [
    rbac // the host reads its storage by identity from the first start
  ]
}

var relayUrl = 'https://${functionApp.outputs.defaultHostName}/api/alerts/relay'
// The app serves the runbooks it links to, so by default the alerts link there too.
var runbookBase = empty(runbookBaseUrl) ? 'https://${functionApp.outputs.defaultHostName}' : runbookBaseUrl

module actionGroups 'modules/action-groups.bicep' = {
  name: '${namePrefix}-action-groups'
  params: {
    namePrefix: namePrefix
    alertEmails: alertEmails
    relayUrl: relayUrl
    relaySecret: relaySecret
    relayFunctionKey: relayFunctionKey
    tags: tags
  }
}

module alertRules 'modules/alert-rules.bicep' = {
  name: '${namePrefix}-alert-rules'
  params: {
    workspaceId: monitoring.outputs.workspaceId
    location: location
    criticalActionGroupId: actionGroups.outputs.criticalActionGroupId
    notifyActionGroupId: actionGroups.outputs.notifyActionGroupId
    runbookBaseUrl: runbookBase
    enabled: alertsEnabled
    skipQueryValidation: skipQueryValidation
    namePrefix: namePrefix
    tags: tags
  }
}

module workbook 'modules/workbook.bicep' = {
  name: '${namePrefix}-workbook'
  params: {
    location: location
    workspaceId: monitoring.outputs.workspaceId
    displayName: 'Integration monitoring (${namePrefix})'
    tags: tags
  }
}

// --- Outputs (no secrets) ---------------------------------------------------------------------

@description('The admin dashboard; requests need a function key (?code=... or the x-functions-key header).')
output dashboardUrl string = 'https://${functionApp.outputs.defaultHostName}/dashboard'

@description('The alert relay the action groups call (they add code= and secret=).')
output relayUrl string = relayUrl

@description('The health probe.')
output healthUrl string = 'https://${functionApp.outputs.defaultHostName}/api/health'

@description('Name of the Function App (azd and the publish commands use it).')
output AZURE_FUNCTION_NAME string = functionApp.outputs.name

@description('Resource id of the Log Analytics workspace.')
output workspaceId string = monitoring.outputs.workspaceId

@description('LOG_ANALYTICS_WORKSPACE_ID of the app: the workspace customer id.')
output workspaceCustomerId string = monitoring.outputs.workspaceCustomerId

@description('Resource id of the workbook.')
output workbookId string = workbook.outputs.id

module prometheusRules 'modules/prometheus-rules.bicep' = if (!empty(azureMonitorWorkspaceId)) {
  name: '${namePrefix}-prometheus-rules'
  params: {
    azureMonitorWorkspaceId: azureMonitorWorkspaceId
    location: location
    runbookBaseUrl: runbookBase
    enabled: alertsEnabled
    namePrefix: namePrefix
    tags: tags
  }
}
