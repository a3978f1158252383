// Storage for the Functions host, the deployment package and the app's queues, tables and blobs.
// Only identity-based access: shared keys are disabled, so every client authenticates with Microsoft Entra ID.
//
// Declared here rather than with the Azure Verified Module storage/storage-account: the newest one we can use
// (0.33.0) carries Key Vault references at API versions that retire on 2027-02-27 (its customer-managed-key and
// secrets-export parts), and test/bicepCompile.test.ts refuses any in the compiled template. The properties are
// those the module wrote (0.33.0 with the parameters this template gave it), so an existing account is updated in
// place.

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

@description('Log Analytics workspace that receives the storage services\' logs and the account\'s metrics; empty for none.')
param logAnalyticsWorkspaceId string = ''

@description('Also log every read (StorageRead). The queue trigger polls all the time, so this costs more ingestion than the rest together.')
param logReads bool = false

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false // identity-based connections only
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    dnsEndpointType: 'Standard'
    accessTier: 'Hot'
    largeFileSharesState: 'Disabled'
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
        }
        table: {
          enabled: true
        }
      }
    }
    // Flex Consumption without a virtual network reaches storage over its public endpoints; Entra ID guards them.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: storageAccount
  name: 'default'
  properties: {
    // Soft delete: a deleted blob or container stays recoverable for a week.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    isVersioningEnabled: false
    automaticSnapshotPolicyEnabled: false
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = [
  for containerName in concat([deploymentContainerName], blobContainerNames): {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-06-01' = {
  parent: storageAccount
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-06-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-06-01' = {
  parent: storageAccount
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-06-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

// The lifecycle rule of mail-mime is storageLifecycle.bicep's: it follows the message expiry, an app setting.

// Writes and deletes of blobs, queue messages and table rows, with who made them (and reads if asked), and the
// transaction metrics.
var diagnostics = !empty(logAnalyticsWorkspaceId)
var serviceLogs = concat(
  [
    {
      category: 'StorageWrite'
      enabled: true
    }
    {
      category: 'StorageDelete'
      enabled: true
    }
  ],
  logReads
    ? [
        {
          category: 'StorageRead'
          enabled: true
        }
      ]
    : []
)
var transactionMetrics = [
  {
    category: 'Transaction'
    enabled: true
  }
]

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (diagnostics) {
  name: '${name}-diagnosticSettings'
  scope: storageAccount
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    metrics: transactionMetrics
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (diagnostics) {
  name: '${name}-blob-diagnosticSettings'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: serviceLogs
    metrics: transactionMetrics
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (diagnostics) {
  name: '${name}-queue-diagnosticSettings'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: serviceLogs
    metrics: transactionMetrics
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (diagnostics) {
  name: '${name}-table-diagnosticSettings'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: serviceLogs
    metrics: transactionMetrics
  }
}

output name string = storageAccount.name
output resourceId string = storageAccount.id
