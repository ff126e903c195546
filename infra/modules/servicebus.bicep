// A Service Bus namespace and its queues, for an environment that has none yet (main.bicep deploys
// this module only when createServiceBus is true; otherwise it references the existing namespace).
// Shared access keys are off: the queue depth sampler authenticates with the Function App's
// managed identity (rbac-servicebus.bicep), and so should the services that use the queues.
//
// API version 2024-01-01 is stable (bicep-types-az generated/servicebus/microsoft.servicebus/
// 2024-01-01/types.md); namespace and queues share it.

@description('Region of the namespace.')
param location string

@description('Namespace name: 6-50 letters, digits and hyphens, unique in Azure.')
@minLength(6)
@maxLength(50)
param name string

@description('Queues to create; the sampler reads each one\'s depth and dead-letter depth.')
param queues array

@description('Pricing tier; every tier has queues and dead-letter subqueues.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string = 'Standard'

@description('Deliveries after which a message is dead-lettered (the demo dead-letters after five).')
@minValue(1)
param maxDeliveryCount int = 5

@description('Tags for the namespace.')
param tags object = {}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: true // Entra ID only, no SAS keys
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for queueName in queues: {
    parent: namespace
    name: queueName
    properties: {
      maxDeliveryCount: maxDeliveryCount
      deadLetteringOnMessageExpiration: true
    }
  }
]

@description('Name of the namespace.')
output name string = namespace.name

@description('Names of the queues, in the order given.')
output queueNames array = [for i in range(0, length(queues)): queue[i].name]
