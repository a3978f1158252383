targetScope = 'subscription'

// oauth-outbox: Flex Consumption function app, storage without shared keys, Key Vault with RBAC,
// Log Analytics + Application Insights without local authentication, least-privilege role assignments.
// The shape follows Azure-Samples/functions-quickstart-typescript-azd: modules by concern under app/, names from
// abbreviations.json and a resource token, Azure Verified Modules pinned to versions.

@minLength(1)
@maxLength(64)
@description('Name of the azd environment. Used for the resource group name, the azd-env-name tag and the resource token.')
param environmentName string

@minLength(1)
@description('Region of all resources. It must offer the Flex Consumption plan: az functionapp list-flexconsumption-locations --output table')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Mail accounts, the JSON array the app reads from MAIL_ACCOUNTS (each entry has at least an id). No secrets here: client secrets live in Key Vault and are referenced by name.')
param mailAccounts array = []

@description('Comma-separated addresses that receive account alerts, in addition to the receivers of each account.')
param alertRecipients string = ''

@description('NCRONTAB schedule of the token refresh timer (six fields). Empty means hourly.')
param refreshSchedule string = ''

@description('Public https base URL when the app is reached through a custom domain or a proxy. Empty means https://<default host name of the function app>.')
param publicBaseUrl string = ''

@description('Key Vault purge protection. Off for development so that azd down --purge removes the vault; turn it on for production (it cannot be turned off again).')
param keyVaultEnablePurgeProtection bool = false

@minValue(7)
@maxValue(90)
@description('Days a deleted Key Vault or secret stays recoverable.')
param keyVaultSoftDeleteRetentionInDays int = 90

@description('Grant the deploying principal data access to this deployment (storage data, Key Vault secrets) for local debugging and for storing client secrets. Turn off for production and CI.')
param grantDeveloperAccess bool = true

@description('Object id of the deploying principal, used only when grantDeveloperAccess is true.')
param principalId string = deployer().objectId

@description('Maximum number of instances of the function app.')
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Memory of each function app instance, in MB.')
param instanceMemoryMB int = 2048

// Optional name overrides; empty means a generated name.
param resourceGroupName string = ''
param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param appServicePlanName string = ''
param storageAccountName string = ''
param keyVaultName string = ''
param logAnalyticsName string = ''
param applicationInsightsName string = ''

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var serviceName = 'api'
var functionAppName = !empty(apiServiceName) ? apiServiceName : '${abbrs.webSitesFunctions}${serviceName}-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// Storage resources the code uses (shared/names.ts). test/infra.test.ts keeps these lists in step with the code.
var queueNames = [
  'mail-outbox'
  'mail-outbox-poison'
  'mail-results'
]
var tableNames = [
  'accounts'
  'authrequests'
  'deliveries'
  'leases'
]
var blobContainerNames = [
  'mail-attachments'
]

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The identity of the function app: storage, Key Vault and Application Insights accept it; rbac.bicep grants its roles.
module apiUserAssignedIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}${serviceName}-${resourceToken}'
    location: location
    tags: tags
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentStorageContainerName
    blobContainerNames: blobContainerNames
    queueNames: queueNames
    tableNames: tableNames
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    enablePurgeProtection: keyVaultEnablePurgeProtection
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

// After the role assignments: the Flex Consumption platform reads the deployment container with the app's identity,
// from the first `azd deploy` on, and role assignments take a while to apply.
module api './app/api.bicep' = {
  name: serviceName
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    serviceName: serviceName
    location: location
    tags: tags
    appServicePlanId: appServicePlan.outputs.resourceId
    runtimeName: 'node'
    runtimeVersion: '22'
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityId: apiUserAssignedIdentity.outputs.resourceId
    identityClientId: apiUserAssignedIdentity.outputs.clientId
    keyVaultUri: keyVault.outputs.uri
    mailAccounts: mailAccounts
    alertRecipients: alertRecipients
    refreshSchedule: refreshSchedule
    publicBaseUrl: publicBaseUrl
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    managedIdentityPrincipalId: apiUserAssignedIdentity.outputs.principalId
    developerPrincipalId: grantDeveloperAccess ? principalId : ''
  }
}

// Outputs land in the azd environment (.azure/<env>/.env) and feed the post-provision hook. None is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_HOSTNAME string = api.outputs.SERVICE_API_HOSTNAME
output SERVICE_API_BASE_URL string = api.outputs.SERVICE_API_BASE_URL
output OAUTH_REDIRECT_URI string = '${api.outputs.SERVICE_API_BASE_URL}/api/oauth/callback'
output MAIL_ACCOUNT_IDS string = join(map(mailAccounts, account => string(account.id)), ',')
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// Not AZURE_CLIENT_ID: azd exports outputs to hooks and tools, where that name would redirect DefaultAzureCredential.
output API_IDENTITY_CLIENT_ID string = apiUserAssignedIdentity.outputs.clientId
output API_IDENTITY_PRINCIPAL_ID string = apiUserAssignedIdentity.outputs.principalId
