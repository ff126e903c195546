// One Azure Monitor log search alert rule (Microsoft.Insights/scheduledQueryRules, kind LogAlert)
// per entry of integration_monitoring/alerts/rules.json, the single list of alert rules that the local evaluator and
// the relay also read (integration_monitoring/alerts/_rules.py). Edit rules there, not here.
//
// API version 2023-12-01 is the newest stable one for scheduledQueryRules (azure-rest-api-specs:
// specification/monitor/resource-manager/Microsoft.Insights/stable/2023-12-01/scheduledQueryRule_API.json).
//
// Routing: a rule's `channels` pick its action group.
//   - 'pagerduty' or 'email' in channels -> the critical group (email receivers + the relay webhook);
//   - otherwise 'slack' in channels     -> the notify group (the relay webhook only);
//   - no channel                        -> no action group (the alert still shows in the portal).
// The relay reads customProperties.ruleId and sends to the rule's own channels (Slack, PagerDuty);
// Azure Monitor itself only sends the emails.

@description('Resource id of the Log Analytics workspace the rules query (their only scope).')
param workspaceId string

@description('Region of the rules; the workspace region is the usual choice.')
param location string = resourceGroup().location

@description('Action group for rules whose channels include pagerduty or email (email receivers + relay webhook).')
param criticalActionGroupId string

@description('Action group for slack-only rules (relay webhook only).')
param notifyActionGroupId string

@description('Base address that serves the runbooks (docs/runbooks/<id>.md is appended), such as the Function app\'s https://<host>; empty leaves the bare path.')
param runbookBaseUrl string = ''

@description('Whether the rules are evaluated; false deploys them switched off.')
param enabled bool = true

@description('Create the rules without validating their queries against the workspace. A new workspace has no AppTraces or AppMetrics table until the first telemetry arrives, and validation would reject the rules (the Azure Monitor team\'s advice for rules deployed with their workspace: mspnp/aks-baseline#422).')
param skipQueryValidation bool = false

@description('Prefix of every rule resource name, e.g. "intmon-prod".')
@minLength(1)
param namePrefix string

@description('Tags for every rule.')
param tags object = {}

var rules = loadJsonContent('../../integration_monitoring/alerts/rules.json').rules

// Same address as AlertRule.runbook_url in Python: base without its trailing slash, then the path.
var runbookBase = endsWith(runbookBaseUrl, '/') ? substring(runbookBaseUrl, 0, length(runbookBaseUrl) - 1) : runbookBaseUrl

// Channels that Azure Monitor must reach through the critical group (its email receivers) or that
// page someone (PagerDuty, via the relay).
var criticalChannels = [
  'pagerduty'
  'email'
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: '${namePrefix}-${rule.id}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.title
      description: rule.description
      severity: rule.severity
      enabled: enabled
      scopes: [
        workspaceId
      ]
      evaluationFrequency: rule.evaluationFrequency
      windowSize: rule.windowSize
      criteria: {
        allOf: [
          {
            query: join(rule.query, '\n')
            timeAggregation: rule.timeAggregation
            metricMeasureColumn: rule.metricMeasureColumn
            operator: rule.operator
            threshold: rule.threshold
            dimensions: map(rule.dimensions, d => {
              name: d
              operator: 'Include'
              values: [
                '*'
              ]
            })
            failingPeriods: rule.failingPeriods
          }
        ]
      }
      autoMitigate: true
      skipQueryValidation: skipQueryValidation
      actions: {
        actionGroups: empty(intersection(rule.channels, criticalChannels)) ? (contains(rule.channels, 'slack') ? [notifyActionGroupId] : []) : [criticalActionGroupId]
        customProperties: {
          ruleId: rule.id
          runbookUrl: empty(runbookBase) ? rule.runbook : '${runbookBase}/${rule.runbook}'
        }
      }
    }
  }
]

@description('Resource ids of the alert rules, in the order of integration_monitoring/alerts/rules.json.')
output ruleIds array = [for i in range(0, length(rules)): alertRules[i].id]

@description('Resource names of the alert rules, in the order of integration_monitoring/alerts/rules.json.')
output ruleNames array = [for i in range(0, length(rules)): alertRules[i].name]
