targetScope = 'subscription'

// oauth-outbox: Flex Consumption function app, storage without shared keys, Key Vault with RBAC,
// Log Analytics + Application Insights without local authentication, a workbook and alert rules over the app's
// logs, least-privilege role assignments (the post-provision hook removes those a deployment no longer declares).
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

@description('Public https base URL when the app is reached through a custom domain or a proxy, without a path. Empty means https://<default host name of the function app>. A trailing slash is ignored.')
param publicBaseUrl string = ''

@description('Key Vault purge protection: a deleted vault (with every refresh token in it) stays recoverable for keyVaultSoftDeleteRetentionInDays and nobody can purge it before. Once on, it cannot be turned off. Turn it off only for a throwaway environment that azd down --purge must remove at once.')
param keyVaultEnablePurgeProtection bool = true

@minValue(7)
@maxValue(90)
@description('Days a deleted Key Vault or secret stays recoverable.')
param keyVaultSoftDeleteRetentionInDays int = 90

@description('Grant the deploying principal data access to this deployment (storage data, Key Vault secrets) for local debugging and for storing client secrets. Turn off for production and CI.')
param grantDeveloperAccess bool = true

@description('Object id of the deploying principal, used only when grantDeveloperAccess is true.')
param principalId string = deployer().objectId

// The bounds the Flex Consumption docs give for the maximum instance count (lowest 40, highest 1000). More instances
// do not send faster: the per-mailbox limits hold across all of them.
@minValue(40)
@maxValue(1000)
@description('Maximum number of instances of the function app (Flex Consumption: 40 to 1000).')
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Memory of each function app instance, in MB.')
param instanceMemoryMB int = 2048

@description('App setting MESSAGE_EXPIRY_DAYS: days a message may wait unsent before it fails "expired" (fractions allowed, at most 365). Empty: the app keeps its current value, 7 when never set. MIME messages of the SMTP relay in mail-mime are kept one day longer than this.')
param messageExpiryDays string = ''

@allowed([
  ''
  'all'
  'failures'
  'none'
])
@description('App setting RESULT_EVENTS: which outcomes go to queue mail-results. Empty: the app keeps its current value, all when never set.')
param resultEvents string = ''

@description('App setting TEST_EMAIL_WAIT_SECONDS: how long the test-email route waits for the send path\'s verdict (at most 60). Empty: the app keeps its current value, 20 when never set.')
param testEmailWaitSeconds string = ''

@description('App setting REFRESH_SPREAD_MINUTES: the hourly refresh run spreads its accounts over at most this many minutes (0 to 55). Empty: the app keeps its current value, 8 when never set.')
param refreshSpreadMinutes string = ''

@description('App setting REFRESH_CONCURRENCY: refreshes the run keeps in flight at once (1 to 32). Empty: the app keeps its current value, 8 when never set.')
param refreshConcurrency string = ''

@description('FTP and SCM (Kudu) basic authentication with publishing credentials on the function app. Off: every deployment authenticates with Microsoft Entra ID, as azd does.')
param allowBasicPublishingCredentials bool = false

@description('Diagnostic settings that send the platform logs and metrics of the function app, the storage services and Key Vault to the Log Analytics workspace.')
param diagnosticLogs bool = true

@description('With diagnosticLogs: also every storage read. The queue trigger polls all the time, so this costs more ingestion than all the other logs together.')
param storageReadLogs bool = false

@minValue(1)
@description('Alert when more messages than this of one account failed for good within an hour.')
param alertFailedMessagesPerHour int = 10

@minValue(1)
@maxValue(47)
@description('Alert when a message has waited unsent longer than this many hours (the alert looks back two days).')
param alertOldestWaitingHours int = 24

@description('Object (principal) id of the SMTP relay\'s Microsoft Entra identity. Set, it may write blobs to mail-mime and send messages to mail-outbox, and nothing else. Empty grants nothing.')
param relayPrincipalId string = ''

@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
@description('Kind of the relayPrincipalId: ServicePrincipal for a managed identity or an app registration.')
param relayPrincipalType string = 'ServicePrincipal'

@description('Create a user-assigned managed identity for the SMTP relay, with the relay\'s role assignments. Attach it to the Azure VM or container that runs the relay, or federate it (relayFederatedIssuer) for Kubernetes. The post-provision hook writes a relay.json for it.')
param createRelayIdentity bool = false

@description('With createRelayIdentity: the OIDC issuer whose tokens the relay identity accepts (the issuer URL of an AKS or Azure Arc-enabled Kubernetes cluster). Empty: no federated credential.')
param relayFederatedIssuer string = ''

@description('With relayFederatedIssuer: the subject of those tokens; for Kubernetes system:serviceaccount:<namespace>:<service account>.')
param relayFederatedSubject string = 'system:serviceaccount:oauth-outbox:oauth-outbox-relay'

@description('Application (client) id of a Microsoft Entra app registration for App Service Authentication in front of the admin pages (status page, account routes, authorize). Empty: off, the function key alone guards them. Not verified on Flex Consumption: read docs/deployment.md first.')
param adminSignInClientId string = ''

@description('Object ids of the users (or service principals) allowed through the admin sign-in. Empty: anyone the app registration lets sign in (use "Assignment required" on its enterprise application).')
param adminSignInAllowedObjectIds array = []

// Optional name overrides; empty means a generated name.
param resourceGroupName string = ''
param apiServiceName string = ''
param apiUserAssignedIdentityName string = ''
param appServicePlanName string = ''
param storageAccountName string = ''
param keyVaultName string = ''
param logAnalyticsName string = ''
param applicationInsightsName string = ''
param actionGroupName string = ''

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
  'accountconfigs'
  'accountaudit'
  'deliveries'
  'leases'
]
var blobContainerNames = [
  'mail-attachments'
  'mail-mime'
  'relay-senders'
  'relay-activity'
]
// The SMTP relay's container (MIME messages that wait in mail-outbox; the relay writes them, the app reads and deletes
// them) and the queue the relay sends to.
var mimeContainerName = 'mail-mime'
var outboxQueueName = 'mail-outbox'
// What the app publishes for the relay (allowed senders and account states) and what the relay reports of its devices.
var relaySendersContainerName = 'relay-senders'
var relayActivityContainerName = 'relay-activity'

// Who receives the alert rules' mails: ALERT_RECIPIENTS and every account's own alert receivers, as the app's
// account alerts do (shared/config/loadAccounts.ts splits ALERT_RECIPIENTS the same way).
var alertReceivers = union(
  filter(map(split(alertRecipients, [',', ';', ' ']), address => trim(address)), address => !empty(address)),
  flatten(map(mailAccounts, account => account.?alerts ?? []))
)
var logAnalyticsWorkspaceId = diagnosticLogs ? monitoring.outputs.logAnalyticsWorkspaceId : ''

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The identity of the function app: storage, Key Vault and Application Insights accept it; rbac.bicep grants its roles.
module apiUserAssignedIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: !empty(apiUserAssignedIdentityName) ? apiUserAssignedIdentityName : '${abbrs.managedIdentityUserAssignedIdentities}${serviceName}-${resourceToken}'
    location: location
    tags: tags
  }
}

// The SMTP relay's identity, when the deployment creates it: one more user-assigned identity, never the app's.
var relayIdentityName = '${abbrs.managedIdentityUserAssignedIdentities}relay-${resourceToken}'
module relayIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = if (createRelayIdentity) {
  name: 'relayIdentity'
  scope: rg
  params: {
    name: relayIdentityName
    location: location
    tags: tags
    federatedIdentityCredentials: empty(relayFederatedIssuer)
      ? []
      : [
          {
            name: 'oauth-outbox-relay'
            issuer: relayFederatedIssuer
            subject: relayFederatedSubject
            audiences: ['api://AzureADTokenExchange']
          }
        ]
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.7.0' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    // The module sets the tier FlexConsumption for FC1. kind stays the module's default, as the plans that
    // earlier versions of this template created have it.
    skuName: 'FC1'
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
    logAnalyticsWorkspaceId: logAnalyticsWorkspaceId
    logReads: storageReadLogs
  }
}

// After the app settings: the lifecycle of mail-mime follows MESSAGE_EXPIRY_DAYS as the app has it.
module storageLifecycle './app/storageLifecycle.bicep' = {
  name: 'storageLifecycle'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    containerName: mimeContainerName
    messageExpiryDays: api.outputs.MESSAGE_EXPIRY_DAYS
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
    logAnalyticsWorkspaceId: logAnalyticsWorkspaceId
  }
}

module operations './app/operations.bicep' = {
  name: 'operations'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    actionGroupName: !empty(actionGroupName) ? actionGroupName : '${abbrs.insightsActionGroups}${resourceToken}'
    alertRuleNamePrefix: 'alert-${resourceToken}-'
    alertReceivers: alertReceivers
    failedMessagesPerHourThreshold: alertFailedMessagesPerHour
    oldestWaitingHoursThreshold: alertOldestWaitingHours
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
    messageExpiryDays: messageExpiryDays
    resultEvents: resultEvents
    testEmailWaitSeconds: testEmailWaitSeconds
    refreshSpreadMinutes: refreshSpreadMinutes
    refreshConcurrency: refreshConcurrency
    allowBasicPublishingCredentials: allowBasicPublishingCredentials
    logAnalyticsWorkspaceId: logAnalyticsWorkspaceId
    adminSignInClientId: adminSignInClientId
    adminSignInAllowedObjectIds: adminSignInAllowedObjectIds
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
    mimeContainerName: mimeContainerName
    relaySendersContainerName: relaySendersContainerName
    relayActivityContainerName: relayActivityContainerName
    outboxQueueName: outboxQueueName
    relayPrincipalId: relayPrincipalId
    relayPrincipalType: relayPrincipalType
    relayIdentityName: createRelayIdentity ? relayIdentityName : ''
    relayIdentityPrincipalId: createRelayIdentity ? relayIdentity!.outputs.principalId : ''
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
// An entry without id is the app's to report (it validates MAIL_ACCOUNTS at start), not a deployment failure.
output MAIL_ACCOUNT_IDS string = join(filter(map(mailAccounts, account => string(account.?id ?? '')), id => !empty(id)), ',')
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
// Not AZURE_CLIENT_ID: azd exports outputs to hooks and tools, where that name would redirect DefaultAzureCredential.
output API_IDENTITY_CLIENT_ID string = apiUserAssignedIdentity.outputs.clientId
output API_IDENTITY_PRINCIPAL_ID string = apiUserAssignedIdentity.outputs.principalId
// Register it on the admin sign-in's app registration (Web platform); empty while the sign-in is off.
output ADMIN_SIGN_IN_REDIRECT_URI string = api.outputs.ADMIN_SIGN_IN_REDIRECT_URI
output MONITORING_WORKBOOK_ID string = operations.outputs.workbookId
// For the post-provision hook's removal of role assignments this template made before and no longer declares.
output AZURE_RESOURCE_GROUP_ID string = rg.id
output AZURE_RESOURCE_MANAGER_ENDPOINT string = environment().resourceManager
// The relay's identity (empty unless createRelayIdentity): the post-provision hook writes relay.json from these.
output RELAY_IDENTITY_NAME string = createRelayIdentity ? relayIdentityName : ''
output RELAY_IDENTITY_CLIENT_ID string = createRelayIdentity ? relayIdentity!.outputs.clientId : ''
output RELAY_IDENTITY_PRINCIPAL_ID string = createRelayIdentity ? relayIdentity!.outputs.principalId : ''
output RELAY_IDENTITY_RESOURCE_ID string = createRelayIdentity ? relayIdentity!.outputs.resourceId : ''
// Where the relay may send its events: the hook prints how to read this component's connection string.
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output ROLE_ASSIGNMENT_NAMES string = join(rbac.outputs.roleAssignmentNames, ',')
