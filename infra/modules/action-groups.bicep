// The action groups the alert rules (alert-rules.bicep) notify.
//
//   critical: an email receiver per address in alertEmails + the relay webhook; for rules whose
//             channels include pagerduty or email.
//   notify:   the relay webhook only; for slack-only rules.
//
// Slack and PagerDuty credentials never go to Azure Monitor: the relay holds them (its app
// settings) and forwards each alert to the channels its rule lists in integration_monitoring/alerts/rules.json,
// found by the ruleId custom property of the alert. Azure Monitor only knows the relay's address
// and the shared secret the relay checks.
//
// API version 2023-01-01 is the newest stable one for actionGroups (azure-rest-api-specs:
// specification/monitor/resource-manager/Microsoft.Insights/stable/2023-01-01/actionGroups_API.json;
// 2024-10-01-preview is newer but a preview). Action groups are global resources.

@description('Prefix of the action group names, e.g. "intmon-prod".')
@minLength(1)
param namePrefix string

@description('Addresses that receive the critical alerts by email.')
param alertEmails array = []

@description('The relay\'s https address, without the secret (e.g. https://<app>.azurewebsites.net/api/alerts).')
param relayUrl string

@description('Shared secret the relay expects; sent as the secret query parameter of the webhook address.')
@secure()
param relaySecret string

@description('Function key for the relay (the app\'s HTTP functions use auth level FUNCTION); sent as the code query parameter. Empty when relayUrl already carries one or needs none.')
@secure()
param relayFunctionKey string = ''

@description('Tags for both groups.')
param tags object = {}

// Webhook receivers authenticate only by what the address carries (the alternative, Entra ID
// auth, needs an app registration), so the secret travels as a query parameter, encoded, after
// any query the address already has, and the Functions key (when given) as `code`, the query
// parameter the Functions host reads. Readers of the action group can see the address: give
// them no more access than the alerts themselves need.
var querySeparator = contains(relayUrl, '?') ? '&' : '?'
var functionKeyQuery = empty(relayFunctionKey) ? '' : 'code=${uriComponent(relayFunctionKey)}&'
var relayWebhook = {
  name: 'relay'
  serviceUri: '${relayUrl}${querySeparator}${functionKeyQuery}secret=${uriComponent(relaySecret)}'
  useCommonAlertSchema: true
  useAadAuth: false
}

resource critical 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-critical'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'intmon-crit' // at most 12 characters
    enabled: true
    emailReceivers: [
      for (address, i) in alertEmails: {
        name: 'email-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: [
      relayWebhook
    ]
  }
}

resource notify 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-notify'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'intmon-ntfy' // at most 12 characters
    enabled: true
    webhookReceivers: [
      relayWebhook
    ]
  }
}

@description('Resource id of the critical group (email + relay).')
output criticalActionGroupId string = critical.id

@description('Resource id of the notify group (relay only).')
output notifyActionGroupId string = notify.id
