// Alerts alone, for an existing Log Analytics workspace: the action groups and one log search
// alert rule per entry of integration_monitoring/alerts/rules.json, deployed into the current
// resource group.
// infra/main.bicep deploys the same two modules as part of the whole stack.
//
//   az deployment group create -g <resource group> -f infra/alerts.bicep \
//     -p workspaceName=<workspace> relayUrl=https://<app host>/api/alerts/relay \
//        relaySecret=<secret> relayFunctionKey=<function key> alertEmails='["oncall@example.com"]' \
//        runbookBaseUrl=https://<app host>
//
// relaySecret is a secure parameter: pass it from a Key Vault reference in a parameters file or
// from the environment, never from a committed file.

targetScope = 'resourceGroup'

@description('Name of the Log Analytics workspace the rules query.')
param workspaceName string

@description('Resource group of the workspace; the deployment\'s own by default.')
param workspaceResourceGroup string = resourceGroup().name

@description('The relay\'s https address, without the secret.')
param relayUrl string

@description('Shared secret the relay expects on its webhook.')
@secure()
param relaySecret string

@description('Function key of the relay\'s app (sent as code=); empty when relayUrl needs none.')
@secure()
param relayFunctionKey string = ''

@description('Addresses that receive the critical alerts by email.')
param alertEmails array = []

@description('Base address that serves the runbooks (docs/runbooks/<id>.md is appended), such as the Function app\'s https://<host>; empty leaves the bare path.')
param runbookBaseUrl string = ''

@description('Prefix of the rule and action group names.')
@minLength(1)
param namePrefix string = 'intmon'

@description('Whether the alert rules are evaluated.')
param enabled bool = true

@description('Create the rules without Azure Monitor checking their queries against the workspace. Leave false for a workspace that already holds the app\'s telemetry (a typo in a query then fails the deployment); set true for a workspace that has not received any yet, which has no AppTraces or AppMetrics table and would refuse every rule.')
param skipQueryValidation bool = false

@description('Tags for every resource.')
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
  scope: resourceGroup(workspaceResourceGroup)
}

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
    workspaceId: workspace.id
    location: workspace.location
    criticalActionGroupId: actionGroups.outputs.criticalActionGroupId
    notifyActionGroupId: actionGroups.outputs.notifyActionGroupId
    runbookBaseUrl: runbookBaseUrl
    enabled: enabled
    skipQueryValidation: skipQueryValidation
    namePrefix: namePrefix
    tags: tags
  }
}

output criticalActionGroupId string = actionGroups.outputs.criticalActionGroupId
output notifyActionGroupId string = actionGroups.outputs.notifyActionGroupId
output alertRuleIds array = alertRules.outputs.ruleIds
