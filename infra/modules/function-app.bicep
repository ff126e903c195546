// The Function App: a Flex Consumption (FC1) plan and a Python 3.11 app that runs function_app.py
// (the admin ASGI app, the queue depth timer and the alert redelivery timer), with a user-assigned managed identity for
// everything it reaches, and optionally App Service authentication (Entra ID) in front of it.
//
// App settings: every setting the Python code reads (tests/test_infra.py greps the code and
// checks this module sets each one), plus the host's identity-based storage settings. Left out:
//   - TELEMETRY_DB and TELEMETRY_RETENTION_DAYS: the local DuckDB store's file and its clean-up;
//     with APPLICATIONINSIGHTS_CONNECTION_STRING set the app never opens the store, and the
//     workspace's retention (monitoring.bicep) is the retention in Azure.
//   - PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: configure_telemetry() configures
//     azure-monitor-opentelemetry itself; this setting would configure it a second time
//     (README, "In an Azure Functions app").
//   - FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE and the
//     other settings Flex Consumption moved into functionAppConfig (runtime, deployment).
// Secrets (relay secret, Slack webhook, PagerDuty routing key, the Entra client secret) arrive
// as secure parameters and are stored as app settings, which App Service encrypts at rest.
//
// API versions: Microsoft.Web 2024-11-01 (stable; bicep-types-az generated/web/microsoft.web/
// 2024-11-01/types.md: FunctionAppConfig, SiteAuthSettingsV2Properties); the storage account
// and Application Insights are only read (`existing`).

@description('Region of the plan and the app.')
param location string

@description('Name of the Function App (its default host name is <name>.azurewebsites.net unless the platform assigns a unique one).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Tags for the plan and the app; the app also gets azd-service-name.')
param tags object = {}

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client id of that identity (AzureWebJobsStorage__clientId, AZURE_CLIENT_ID).')
param identityClientId string

@description('Name of the storage account (AzureWebJobsStorage by identity, deployment container).')
param storageAccountName string

@description('Blob container for the app package.')
param deploymentContainerName string

@description('Name of the Application Insights component the app sends telemetry to.')
param appInsightsName string

@description('Send telemetry with Entra ID (the identity needs Monitoring Metrics Publisher on Application Insights).')
param appInsightsEntraAuth bool = true

@description('LOG_ANALYTICS_WORKSPACE_ID: the workspace customer id the admin queries run against.')
param logAnalyticsWorkspaceId string

@description('LOG_ANALYTICS_ENDPOINT: the Logs query endpoint for sovereign clouds; empty uses the public cloud default.')
param logAnalyticsEndpoint string = ''

@description('LOG_ANALYTICS_QUERIES_PER_30S: the most admin queries one instance sends in any 30 s. Log Analytics allows the app\'s identity 200 in all; lower it when more than one instance serves the admin API.')
@minValue(1)
@maxValue(200)
param logAnalyticsQueriesPer30s int = 120

@description('SERVICEBUS_FULLY_QUALIFIED_NAMESPACE, e.g. myns.servicebus.windows.net.')
param serviceBusFullyQualifiedNamespace string

@description('SERVICEBUS_QUEUES: the queues whose depths are sampled.')
@minLength(1)
param serviceBusQueues array

@description('QUEUE_SAMPLE_SCHEDULE: six-field NCRONTAB of the queue depth timer.')
param queueSampleSchedule string = '0 * * * * *'

@description('ALERT_REDELIVERY_SCHEDULE: six-field NCRONTAB of the timer that sends queued alert deliveries again.')
param alertRedeliverySchedule string = '30 * * * * *'

@description('INTEGRATION_RESTATEMENT_SCHEDULE: six-field NCRONTAB of the daily timer that restates every integration\'s lifecycle.')
param integrationRestatementSchedule string = '0 15 0 * * *'

@description('PAUSED_SILENCE_SCHEDULE: six-field NCRONTAB of the timer that keeps one silence per paused integration.')
param pausedSilenceSchedule string = '0 */5 * * * *'

@description('ALERT_REDELIVERY_HOURS: how long after its first failure a Slack or PagerDuty delivery is retried before it is given up.')
@minValue(1)
@maxValue(720)
param alertRedeliveryHours int = 24

@description('ALERT_RELAY_SECRET: the shared secret action groups send to the relay.')
@secure()
param relaySecret string

@description('SLACK_WEBHOOK_URL: Slack incoming webhook for the relay; empty disables Slack.')
@secure()
param slackWebhookUrl string = ''

@description('PAGERDUTY_ROUTING_KEY: PagerDuty Events API v2 routing key; empty disables PagerDuty.')
@secure()
param pagerDutyRoutingKey string = ''

@description('PAGERDUTY_EVENTS_URL: PagerDuty Events API v2 endpoint.')
param pagerDutyEventsUrl string = 'https://events.pagerduty.com/v2/enqueue'

@description('DASHBOARD_BASE_URL: where Slack messages link to; empty uses https://<name>.azurewebsites.net.')
param dashboardBaseUrl string = ''

@description('ALERT_RULE_NAME_PREFIX: the name prefix of the alert rules (alert-rules.bicep names a rule "<prefix>-<rule id>"), so that a silence\'s alert processing rule can name them. Empty keeps silences out of Azure: ALERT_PROCESSING_RESOURCE_GROUP is then left empty.')
param alertRuleNamePrefix string = ''

@description('ALERT_ROUTES_FILE: path of a routes file inside the deployed package; empty uses the shipped integration_monitoring/alerts/routes.json. Each receiver it names reads its secret from a SLACK_WEBHOOK_URL_* or PAGERDUTY_ROUTING_KEY_* app setting set beside these.')
param alertRoutesFile string = ''

@description('The secrets of the receivers the routes file adds, by app setting name (SLACK_WEBHOOK_URL_<NAME>, PAGERDUTY_ROUTING_KEY_<NAME>).')
@secure()
param alertReceiverSecrets object = {}

@description('RUNBOOK_BASE_URL: base address that serves docs/runbooks/<id>.md, for alert messages; empty: the app itself (WEBSITE_HOSTNAME).')
param runbookBaseUrl string = ''

@description('TELEMETRY_STDOUT: also print each event as a JSON line. In Azure the host no longer forwards console output (host.json telemetryMode OpenTelemetry), so the lines are not kept anywhere.')
param telemetryStdout bool = false

@description('TELEMETRY_PROMETHEUS: serve /metrics. function_app.py asks for the Prometheus reader itself; the setting records the same choice.')
param telemetryPrometheus bool = true

@description('TELEMETRY_CARDINALITY_LIMIT: label sets kept per metric per process.')
@minValue(1)
param telemetryCardinalityLimit int = 2000

@description('TELEMETRY_EXPORT_INTERVAL_MS: metric export interval of the local store (unused while Application Insights is configured; set for a uniform environment).')
@minValue(1000)
param telemetryExportIntervalMs int = 10000

@description('Most instances the app scales out to.')
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

@description('Put App Service authentication (Entra ID sign-in) in front of the app.')
param enableAuth bool = false

@description('Client (application) id of the Entra ID app registration used for sign-in.')
param authClientId string = ''

@description('Entra ID tenant of that app registration.')
param authTenantId string = tenant().tenantId

@description('Client secret of the app registration; empty signs in without one (ID tokens).')
@secure()
param authClientSecret string = ''

@description('Object ids of the Entra ID groups allowed in; empty allows every account of the tenant that can sign in to the app registration.')
param authAllowedGroupIds array = []

@description('Name of the claim that lists a Monitoring.Reader\'s tenants (comma-, semicolon- or space-separated, or one claim per tenant).')
param authTenantClaim string = 'tenants'

@description('Paths that stay reachable without signing in: the relay (Azure Monitor cannot sign in; it carries the relay secret).')
param authExcludedPaths array = [
  '/api/alerts/relay'
]

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var defaultHost = '${name}.azurewebsites.net'
var authSecretSetting = 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'

// Every setting the Python code reads, by name (tests/test_infra.py checks these keys).
var codeSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  LOG_ANALYTICS_WORKSPACE_ID: logAnalyticsWorkspaceId
  LOG_ANALYTICS_ENDPOINT: logAnalyticsEndpoint
  LOG_ANALYTICS_QUERIES_PER_30S: string(logAnalyticsQueriesPer30s)
  SERVICEBUS_FULLY_QUALIFIED_NAMESPACE: serviceBusFullyQualifiedNamespace
  SERVICEBUS_QUEUES: join(serviceBusQueues, ',')
  QUEUE_SAMPLE_SCHEDULE: queueSampleSchedule
  ALERT_REDELIVERY_SCHEDULE: alertRedeliverySchedule
  INTEGRATION_RESTATEMENT_SCHEDULE: integrationRestatementSchedule
  PAUSED_SILENCE_SCHEDULE: pausedSilenceSchedule
  ALERT_REDELIVERY_HOURS: string(alertRedeliveryHours)
  // The relay's outbox table (storage.bicep), reached by identity like AzureWebJobsStorage.
  ALERT_OUTBOX_TABLE_ENDPOINT: storage.properties.primaryEndpoints.table
  ALERT_RELAY_SECRET: relaySecret
  SLACK_WEBHOOK_URL: slackWebhookUrl
  PAGERDUTY_ROUTING_KEY: pagerDutyRoutingKey
  PAGERDUTY_EVENTS_URL: pagerDutyEventsUrl
  DASHBOARD_BASE_URL: empty(dashboardBaseUrl) ? 'https://${defaultHost}' : dashboardBaseUrl
  RUNBOOK_BASE_URL: runbookBaseUrl
  ALERT_ROUTES_FILE: alertRoutesFile
  // Silences as alert processing rules in this resource group, on everything in it (the alerts
  // fire on the workspace); the identity is Monitoring Contributor here (rbac.bicep).
  ALERT_PROCESSING_RESOURCE_GROUP: empty(alertRuleNamePrefix) ? '' : resourceGroup().name
  ALERT_PROCESSING_SUBSCRIPTION_ID: subscription().subscriptionId
  ALERT_PROCESSING_SCOPES: resourceGroup().id
  ALERT_RULE_NAME_PREFIX: alertRuleNamePrefix
  TELEMETRY_STDOUT: telemetryStdout ? 'true' : 'false'
  TELEMETRY_PROMETHEUS: telemetryPrometheus ? 'true' : 'false'
  TELEMETRY_CARDINALITY_LIMIT: string(telemetryCardinalityLimit)
  TELEMETRY_EXPORT_INTERVAL_MS: string(telemetryExportIntervalMs)
  // Who may call: function keys checked by the host, or Entra ID sign-in with app roles.
  ADMIN_AUTH: enableAuth ? 'entra' : 'function-key'
  ADMIN_TENANT_CLAIM: authTenantClaim
}

// The Functions host and the Azure SDKs: storage by identity, and which identity
// DefaultAzureCredential (Log Analytics, Service Bus) uses.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
}

var ingestionSettings = appInsightsEntraAuth ? {
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
} : {}

var authSettings = enableAuth && !empty(authClientSecret) ? {
  MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: authClientSecret // = authSecretSetting
} : {}

var appSettings = union(codeSettings, hostSettings, ingestionSettings, authSettings,
  alertReceiverSecrets)

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api' // azure.yaml's service
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// The app settings as the site's `appsettings` config, one object. A loop over them inside the
// site (`[for s in items(appSettings): ...]`) would not compile: a loop's array must be known
// when the deployment starts, and these values are other resources' runtime properties (the
// compiler's BCP178).
resource settings 'Microsoft.Web/sites/config@2024-11-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

// App Service authentication (Easy Auth, v2 settings): browsers are sent to Entra ID sign-in,
// except on authExcludedPaths. With it the app runs at auth level ANONYMOUS (ADMIN_AUTH=entra)
// and authorizes from the signed-in principal's app roles: Monitoring.Admin reads every tenant,
// Monitoring.Reader the tenants in its tenant claim.
resource auth 'Microsoft.Web/sites/config@2024-11-01' = if (enableAuth) {
  parent: site
  name: 'authsettingsV2'
  // One config write at a time on a site; the client secret setting it names comes first.
  dependsOn: [
    settings
  ]
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: authExcludedPaths
    }
    httpSettings: {
      requireHttps: true
      routes: {
        apiPrefix: '/.auth'
      }
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: union(
          {
            clientId: authClientId
            openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
          },
          empty(authClientSecret) ? {} : {
            clientSecretSettingName: authSecretSetting
          }
        )
        validation: union(
          {
            allowedAudiences: [
              'api://${authClientId}'
              authClientId
            ]
          },
          empty(authAllowedGroupIds) ? {} : {
            defaultAuthorizationPolicy: {
              allowedPrincipals: {
                groups: authAllowedGroupIds
              }
            }
          }
        )
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

@description('Name of the app.')
output name string = site.name

@description('The app\'s default host name.')
output defaultHostName string = site.properties.defaultHostName

@description('Resource id of the app.')
output id string = site.id
