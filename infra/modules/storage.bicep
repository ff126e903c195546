// The Function App's storage account, reached only by identity: the host's AzureWebJobsStorage
// (timer leases, host keys), the Flex Consumption deployment container that holds the app
// package, and the alert relay's outbox table (deliveries waiting for the redelivery timer).
// Shared keys are off, so no connection string with a key exists anywhere; the app's managed
// identity gets Storage Blob Data Owner on the account and Storage Table Data Contributor on
// the outbox table (rbac.bicep).
//
// API version 2025-01-01 is stable (bicep-types-az generated/storage/microsoft.storage/
// 2025-01-01/types.md); the account, its blob and table services, the container and the table
// share it.

@description('Region of the account.')
param location string

@description('Storage account name: 3-24 lower-case letters and digits, unique in Azure.')
@minLength(3)
@maxLength(24)
param name string

@description('Blob container that Flex Consumption deploys the app package to.')
@minLength(3)
@maxLength(63)
param deploymentContainerName string

@description('Table of the alert relay\'s outbox (the code\'s TABLE_NAME): 3-63 letters and digits, starting with a letter.')
@minLength(3)
@maxLength(63)
param outboxTableName string = 'alertoutbox'

@description('Tags for the account.')
param tags object = {}

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: Entra ID tokens, no keys and no SAS
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource deployment 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource outbox 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' = {
  parent: tables
  name: outboxTableName
}

@description('Name of the account.')
output name string = account.name

@description('Resource id of the account.')
output id string = account.id

@description('The blob endpoint, https://<account>.blob.<suffix>/.')
output blobEndpoint string = account.properties.primaryEndpoints.blob

@description('Name of the deployment container.')
output deploymentContainerName string = deployment.name

@description('The table endpoint, https://<account>.table.<suffix>/ (ALERT_OUTBOX_TABLE_ENDPOINT).')
output tableEndpoint string = account.properties.primaryEndpoints.table

@description('Name of the alert outbox table.')
output outboxTableName string = outbox.name
