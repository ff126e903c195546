// The Service Bus role of the Function App's managed identity, deployed to the namespace's
// resource group (an existing namespace may live elsewhere than the app).
//
// Which role: the queue depth sampler reads each queue's runtime properties (active and
// dead-letter message counts) with ServiceBusAdministrationClient.get_queue_runtime_properties,
// an operation of the management (ATOM) API that needs the Manage right. Azure Service Bus Data
// Sender and Data Receiver grant only Send and Listen, so the identity needs
// Azure Service Bus Data Owner. To give no more than that, it is assigned on each sampled queue,
// not on the namespace: the identity can manage those queues and nothing else in the namespace.
//
// The module also returns the namespace's host name (SERVICEBUS_FULLY_QUALIFIED_NAMESPACE), read
// from the namespace itself so that sovereign clouds get their own suffix; as main.bicep deploys
// it after the namespace and its queues exist, the Function App that needs the host name is
// created after the role assignments as well.
//
// API versions: roleAssignments 2022-04-01; namespaces and queues 2024-01-01 (servicebus.bicep).

@description('Principal (object) id of the Function App\'s managed identity.')
param principalId string

@description('Name of the Service Bus namespace (in this module\'s resource group).')
param namespaceName string

@description('The queues the sampler reads; each must exist.')
@minLength(1)
param queues array

var azureServiceBusDataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: namespaceName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = [
  for queueName in queues: {
    parent: namespace
    name: queueName
  }
]

resource queueDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for i in range(0, length(queues)): {
    name: guid(queue[i].id, principalId, azureServiceBusDataOwner)
    scope: queue[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureServiceBusDataOwner)
      principalId: principalId
      principalType: 'ServicePrincipal'
      description: 'Queue depth sampler: queue runtime properties need Manage'
    }
  }
]

// serviceBusEndpoint is "https://<namespace>.servicebus.windows.net:443/".
@description('The namespace\'s fully qualified host name, e.g. myns.servicebus.windows.net.')
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
