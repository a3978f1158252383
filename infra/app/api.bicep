// The function app: Flex Consumption (FC1), Node.js, a user-assigned managed identity for every connection.
// App settings are written once, after the site exists, so that PUBLIC_BASE_URL can use its real default host name.

param name string
param location string = resourceGroup().location
param tags object = {}

@description('azd service name; must match the service in azure.yaml.')
param serviceName string = 'api'

param appServicePlanId string
param runtimeName string = 'node'
param runtimeVersion string = '22'
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 100

param storageAccountName string
param deploymentStorageContainerName string
param applicationInsightsName string

@description('Resource id of the user-assigned identity of the app.')
param identityId string

@description('Client id of the user-assigned identity of the app.')
param identityClientId string

@description('URI of the Key Vault that holds tokens and client secrets.')
param keyVaultUri string

@description('Mail accounts (MAIL_ACCOUNTS).')
param mailAccounts array = []

@description('Comma-separated receivers of account alerts (ALERT_RECIPIENTS).')
param alertRecipients string = ''

@description('NCRONTAB schedule of the token refresh timer (REFRESH_SCHEDULE); empty means hourly.')
param refreshSchedule string = ''

@description('Public https base URL; empty means https://<default host name>.')
param publicBaseUrl string = ''

@description('Further app settings, merged under the ones below.')
param additionalAppSettings object = {}

var defaultRefreshSchedule = '0 0 * * * *'

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

module api 'br/public:avm/res/web/site:0.15.1' = {
  name: '${serviceName}-flex-consumption'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    serverFarmResourceId: appServicePlanId
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identityId
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
    }
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
    }
  }
}

resource site 'Microsoft.Web/sites@2023-12-01' existing = {
  name: name
}

// Referencing the module output also orders the app settings after the site.
var effectiveBaseUrl = !empty(publicBaseUrl) ? publicBaseUrl : 'https://${api.outputs.defaultHostname}'

// Flex Consumption sets the runtime in functionAppConfig: FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE and similar settings are not allowed here.
resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: site
  name: 'appsettings'
  properties: union(additionalAppSettings, {
    // Host storage (timers, leases, keys), identity-based.
    AzureWebJobsStorage__accountName: stg.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // The app's own storage connection (STORAGE_CONNECTION in shared/names.ts), used by the queue trigger and the SDK clients.
    MailStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
    MailStorage__tableServiceUri: stg.properties.primaryEndpoints.table
    MailStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
    MailStorage__credential: 'managedidentity'
    MailStorage__clientId: identityClientId
    // DefaultAzureCredential / ManagedIdentityCredential pick the user-assigned identity.
    AZURE_CLIENT_ID: identityClientId
    KEY_VAULT_URL: keyVaultUri
    PUBLIC_BASE_URL: effectiveBaseUrl
    MAIL_ACCOUNTS: string(mailAccounts)
    ALERT_RECIPIENTS: alertRecipients
    REFRESH_SCHEDULE: !empty(refreshSchedule) ? refreshSchedule : defaultRefreshSchedule
    // Telemetry with Microsoft Entra authentication (local authentication is off on the component).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  })
}

output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_HOSTNAME string = api.outputs.defaultHostname
output SERVICE_API_BASE_URL string = effectiveBaseUrl
