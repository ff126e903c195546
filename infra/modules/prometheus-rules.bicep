// Azure Monitor managed Prometheus rule groups (Microsoft.AlertsManagement/prometheusRuleGroups) for the
// seed's five alerts: the rules of infra/prometheus/alert-rules.yml, loaded from
// infra/prometheus/azure-rule-groups.json, which infra/prometheus/generate.py writes from
// integration_monitoring/alerts/rules.json. Edit the rules there, not here.
//
// Optional, and off by default where it is wired in: it only helps where the metrics reach an Azure
// Monitor workspace (managed Prometheus, e.g. a Prometheus or an agent that scrapes /metrics and
// remote-writes there; see infra/prometheus/README.md). The log search alerts of alert-rules.bicep
// cover the same conditions from Log Analytics.
//
// API version 2023-03-01 is the stable one for prometheusRuleGroups (azure-rest-api-specs:
// specification/alertsmanagement/resource-manager/Microsoft.AlertsManagement/PrometheusRuleGroups/
// stable/2023-03-01/PrometheusRuleGroups.json; Bicep types in Azure/bicep-types-az
// generated/alertsmanagement/microsoft.alertsmanagement/2023-03-01/types.md).
//
// Routing follows alert-rules.bicep: 'pagerduty' or 'email' in a rule's channels -> the critical
// action group, otherwise 'slack' -> the notify group. Both default to none: the relay
// (POST /api/alerts/relay) reads log and metric alerts of the common alert schema, and a
// Prometheus alert's payload has neither, so point these at other receivers until it does.

@description('Resource id of the Azure Monitor workspace whose Prometheus metrics the rules evaluate.')
param azureMonitorWorkspaceId string

@description('Region of the rule groups; the Azure Monitor workspace region is the usual choice.')
param location string = resourceGroup().location

@description('Action group for rules whose channels include pagerduty or email; empty for none.')
param criticalActionGroupId string = ''

@description('Action group for slack-only rules; empty for none.')
param notifyActionGroupId string = ''

@description('Base address that serves the runbooks (docs/runbooks/<id>.md is appended), such as the Function app\'s https://<host>; empty leaves the bare path.')
param runbookBaseUrl string = ''

@description('Whether the rule groups are evaluated; false deploys them switched off.')
param enabled bool = true

@description('Prefix of every rule group name, e.g. "intmon-prod".')
@minLength(1)
param namePrefix string

@description('Tags for every rule group.')
param tags object = {}

var ruleSet = loadJsonContent('../prometheus/azure-rule-groups.json')

// Same address as the Azure log search rules and the Prometheus rule file: base, then the path.
var runbookBase = endsWith(runbookBaseUrl, '/') ? substring(runbookBaseUrl, 0, length(runbookBaseUrl) - 1) : runbookBaseUrl

var criticalChannels = [
  'pagerduty'
  'email'
]

resource ruleGroups 'Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01' = [
  for group in ruleSet.groups: {
    name: '${namePrefix}-${group.name}'
    location: location
    tags: tags
    properties: {
      description: 'The seed\'s alerts of the ${group.name} group (infra/prometheus/alert-rules.yml).'
      enabled: enabled
      interval: ruleSet.interval
      scopes: [
        azureMonitorWorkspaceId
      ]
      rules: [
        for rule in group.rules: {
          alert: rule.alert
          expression: rule.expression
          'for': rule['for']
          severity: rule.severity
          enabled: enabled
          labels: rule.labels
          annotations: union(rule.annotations, {
            runbook_url: empty(runbookBase) ? rule.runbook : '${runbookBase}/${rule.runbook}'
          })
          resolveConfiguration: {
            autoResolved: true
            timeToResolve: 'PT10M'
          }
          // The rule's action group, or none when its group id is empty.
          actions: filter([
            {
              actionGroupId: empty(intersection(rule.channels, criticalChannels)) ? (contains(rule.channels, 'slack') ? notifyActionGroupId : '') : criticalActionGroupId
              actionProperties: {
                ruleId: rule.ruleId
                runbookUrl: empty(runbookBase) ? rule.runbook : '${runbookBase}/${rule.runbook}'
              }
            }
          ], action => !empty(action.actionGroupId))
        }
      ]
    }
  }
]

@description('Resource ids of the rule groups, in the order of infra/prometheus/azure-rule-groups.json.')
output ruleGroupIds array = [for i in range(0, length(ruleSet.groups)): ruleGroups[i].id]
