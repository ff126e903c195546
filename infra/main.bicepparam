// One example environment: production in West Europe, sampling the existing namespace the sync
// services use. Copy this file for another environment and change the values.
//
// No secret is written here: each one is read from an environment variable when the deployment
// is built (az deployment group create ... -p infra/main.bicepparam, or azd, which exports its
// environment's values). A required secret that is not set stops the build with its name.
//
//   export ALERT_RELAY_SECRET=$(openssl rand -hex 32)    # required
//   export RELAY_FUNCTION_KEY=$(openssl rand -hex 32)    # required; registered on the app after publishing
//   export SLACK_WEBHOOK_URL=https://hooks.slack.com/services/...   # optional
//   export PAGERDUTY_ROUTING_KEY=...                                 # optional
//
// Non-secret values can be overridden the same way (defaults after the comma).

using './main.bicep'

param namePrefix = readEnvironmentVariable('INTMON_NAME_PREFIX', 'intmon-prod')

param tags = {
  environment: 'production'
  application: 'integration-monitoring'
}

param logRetentionDays = int(readEnvironmentVariable('INTMON_LOG_RETENTION_DAYS', '30'))

// The namespace the sync services already use; set INTMON_CREATE_SERVICE_BUS=true to create it
// (with the queues below) in this deployment instead.
param createServiceBus = bool(readEnvironmentVariable('INTMON_CREATE_SERVICE_BUS', 'false'))
param serviceBusNamespaceName = readEnvironmentVariable('INTMON_SERVICEBUS_NAMESPACE', 'contoso-integrations-prod')
param serviceBusResourceGroup = readEnvironmentVariable('INTMON_SERVICEBUS_RESOURCE_GROUP', 'rg-integrations-prod')
param serviceBusQueues = [
  'sync-jobs'
]
param queueSampleSchedule = '0 * * * * *'

param alertEmails = [
  'integrations-oncall@example.com'
]
// Empty: alerts link to the runbooks the Function app serves (docs/runbooks/<id>.md).
param runbookBaseUrl = ''

// Secrets: from the environment only.
param relaySecret = readEnvironmentVariable('ALERT_RELAY_SECRET')
param relayFunctionKey = readEnvironmentVariable('RELAY_FUNCTION_KEY')
param slackWebhookUrl = readEnvironmentVariable('SLACK_WEBHOOK_URL', '')
param pagerDutyRoutingKey = readEnvironmentVariable('PAGERDUTY_ROUTING_KEY', '')

// Entra ID sign-in in front of the admin routes: set INTMON_AUTH_CLIENT_ID to an app
// registration's client id to turn it on.
param enableAuth = !empty(readEnvironmentVariable('INTMON_AUTH_CLIENT_ID', ''))
param authClientId = readEnvironmentVariable('INTMON_AUTH_CLIENT_ID', '')
param authClientSecret = readEnvironmentVariable('INTMON_AUTH_CLIENT_SECRET', '')
