// Storage for the Functions host, the deployment package and the app's queues, tables and blobs.
// Only identity-based access: shared keys are disabled, so every client authenticates with Microsoft Entra ID.

@description('Name of the storage account (3-24 lowercase letters and digits).')
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Blob containers the app uses.')
param blobContainerNames array

@description('Queues the app uses.')
param queueNames array

@description('Tables the app uses.')
param tableNames array

@description('Containers whose blobs a lifecycle rule deletes some days after they were last written: [{ name, days }].')
param expiringContainers array = []

module storageAccount 'br/public:avm/res/storage/storage-account:0.33.0' = {
  name: 'storage-account'
  params: {
    name: name
    location: location
    tags: tags
    kind: 'StorageV2'
    skuName: 'Standard_LRS'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity-based connections only
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        for containerName in concat([deploymentContainerName], blobContainerNames): {
          name: containerName
          publicAccess: 'None'
        }
      ]
    }
    queueServices: {
      queues: [
        for queueName in queueNames: {
          name: queueName
        }
      ]
    }
    tableServices: {
      tables: [
        for tableName in tableNames: {
          name: tableName
        }
      ]
    }
    // Lifecycle management runs about once a day, so a blob can outlive its limit by up to a day.
    managementPolicyRules: [
      for container in expiringContainers: {
        name: 'delete-${container.name}'
        enabled: true
        type: 'Lifecycle'
        definition: {
          filters: {
            blobTypes: [
              'blockBlob'
            ]
            prefixMatch: [
              '${container.name}/'
            ]
          }
          actions: {
            baseBlob: {
              delete: {
                daysAfterModificationGreaterThan: container.days
              }
            }
          }
        }
      }
    ]
  }
}

output name string = storageAccount.outputs.name
output resourceId string = storageAccount.outputs.resourceId
