// Least-privilege role assignments, each at the narrowest scope that works: the storage account, the Key Vault,
// the Application Insights component, and for the SMTP relay three blob containers, one queue and Application
// Insights. The roles are listed once, with the reason for each, in infra/roles.json.
//
// Each assignment's description is its reason from roles.json: that is how the post-provision hook
// (infra/hooks/removeStaleRoleAssignments.mjs) tells the assignments this template made from any made by hand, and
// removes those it made earlier but no longer declares (developer access turned off, the relay changed or cleared).
// The names of the assignments declared now are the output roleAssignmentNames.

param storageAccountName string
param keyVaultName string
param applicationInsightsName string

@description('Principal (object) id of the function app\'s user-assigned identity.')
param managedIdentityPrincipalId string

@description('Principal (object) id of the deploying user for local debugging; empty grants nothing.')
param developerPrincipalId string = ''

@description('Blob container the SMTP relay writes MIME messages to.')
param mimeContainerName string

@description('Queue the SMTP relay sends messages to.')
param outboxQueueName string

@description('Blob container of the allowed-senders document the app publishes for the SMTP relay (the relay reads it).')
param relaySendersContainerName string

@description('Blob container of the SMTP relay\'s device report (the relay writes it, the status page reads it).')
param relayActivityContainerName string

@description('Principal (object) id of the SMTP relay; empty grants nothing.')
param relayPrincipalId string = ''

@description('principalType of the relay\'s role assignments.')
param relayPrincipalType string = 'ServicePrincipal'

@description('Name of the user-assigned identity this deployment created for the relay; empty when it created none.')
param relayIdentityName string = ''

@description('Principal (object) id of that identity.')
param relayIdentityPrincipalId string = ''

var roles = loadJsonContent('../roles.json')

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource mimeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' existing = {
  parent: blobService
  name: mimeContainerName
}

resource relaySendersContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' existing = {
  parent: blobService
  name: relaySendersContainerName
}

resource relayActivityContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' existing = {
  parent: blobService
  name: relayActivityContainerName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource outboxQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' existing = {
  parent: queueService
  name: outboxQueueName
}

// The function app's identity.

resource appStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in filter(roles.appIdentity, r => r.scope == 'storageAccount'): {
  name: guid(storageAccount.id, managedIdentityPrincipalId, role.id)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: role.reason
  }
}]

resource appKeyVaultRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in filter(roles.appIdentity, r => r.scope == 'keyVault'): {
  name: guid(keyVault.id, managedIdentityPrincipalId, role.id)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: role.reason
  }
}]

resource appMonitoringRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in filter(roles.appIdentity, r => r.scope == 'applicationInsights'): {
  name: guid(applicationInsights.id, managedIdentityPrincipalId, role.id)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    principalId: managedIdentityPrincipalId
    principalType: 'ServicePrincipal'
    description: role.reason
  }
}]

// The deploying user, optional. principalType is left out so that a service principal running azd also works.

resource developerStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in filter(roles.developer, r => r.scope == 'storageAccount'): if (!empty(developerPrincipalId)) {
  name: guid(storageAccount.id, developerPrincipalId, role.id)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    principalId: developerPrincipalId
    description: role.reason
  }
}]

resource developerKeyVaultRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in filter(roles.developer, r => r.scope == 'keyVault'): if (!empty(developerPrincipalId)) {
  name: guid(keyVault.id, developerPrincipalId, role.id)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    principalId: developerPrincipalId
    description: role.reason
  }
}]

// The SMTP relay, optional: it writes MIME blobs to one container and sends to one queue; it reads the allowed senders
// the app publishes in a second container, writes its device report to a third and may send its events to Application
// Insights. Nothing else. The relay is the principal named by relayPrincipalId, the identity this deployment created
// for it (relayIdentityName), or both. An assignment's name must be known when the deployment starts, so the created
// identity is named in it by its resource id, not by its principal id (known only once it exists).

var relayIdentityId = empty(relayIdentityName) ? '' : resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', relayIdentityName)
var relayGrantees = concat(
  empty(relayPrincipalId) ? [] : [{ key: relayPrincipalId, created: false }],
  empty(relayIdentityName) ? [] : [{ key: relayIdentityId, created: true }]
)
var relayGrants = flatten(map(relayGrantees, grantee => map(roles.relay, role => { grantee: grantee, role: role })))

resource relayContainerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(relayGrants, g => g.role.scope == 'mimeContainer'): {
  name: guid(mimeContainer.id, grant.grantee.key, grant.role.id)
  scope: mimeContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role.id)
    principalId: grant.grantee.created ? relayIdentityPrincipalId : relayPrincipalId
    principalType: grant.grantee.created ? 'ServicePrincipal' : relayPrincipalType
    description: grant.role.reason
  }
}]

resource relayQueueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(relayGrants, g => g.role.scope == 'outboxQueue'): {
  name: guid(outboxQueue.id, grant.grantee.key, grant.role.id)
  scope: outboxQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role.id)
    principalId: grant.grantee.created ? relayIdentityPrincipalId : relayPrincipalId
    principalType: grant.grantee.created ? 'ServicePrincipal' : relayPrincipalType
    description: grant.role.reason
  }
}]

resource relaySendersRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(relayGrants, g => g.role.scope == 'relaySendersContainer'): {
  name: guid(relaySendersContainer.id, grant.grantee.key, grant.role.id)
  scope: relaySendersContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role.id)
    principalId: grant.grantee.created ? relayIdentityPrincipalId : relayPrincipalId
    principalType: grant.grantee.created ? 'ServicePrincipal' : relayPrincipalType
    description: grant.role.reason
  }
}]

resource relayActivityRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(relayGrants, g => g.role.scope == 'relayActivityContainer'): {
  name: guid(relayActivityContainer.id, grant.grantee.key, grant.role.id)
  scope: relayActivityContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role.id)
    principalId: grant.grantee.created ? relayIdentityPrincipalId : relayPrincipalId
    principalType: grant.grantee.created ? 'ServicePrincipal' : relayPrincipalType
    description: grant.role.reason
  }
}]

resource relayMonitoringRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for grant in filter(relayGrants, g => g.role.scope == 'applicationInsights'): {
  name: guid(applicationInsights.id, grant.grantee.key, grant.role.id)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role.id)
    principalId: grant.grantee.created ? relayIdentityPrincipalId : relayPrincipalId
    principalType: grant.grantee.created ? 'ServicePrincipal' : relayPrincipalType
    description: grant.role.reason
  }
}]

// Every role assignment this deployment declares, by name (a GUID). An assignment of an optional principal that is
// not named has no name here, so the post-provision hook removes it if an earlier deployment made it.
var appStorageNames = [for (role, i) in filter(roles.appIdentity, r => r.scope == 'storageAccount'): appStorageRoles[i].name]
var appKeyVaultNames = [for (role, i) in filter(roles.appIdentity, r => r.scope == 'keyVault'): appKeyVaultRoles[i].name]
var appMonitoringNames = [for (role, i) in filter(roles.appIdentity, r => r.scope == 'applicationInsights'): appMonitoringRoles[i].name]
var developerStorageNames = [for (role, i) in filter(roles.developer, r => r.scope == 'storageAccount'): developerStorageRoles[i].name]
var developerKeyVaultNames = [for (role, i) in filter(roles.developer, r => r.scope == 'keyVault'): developerKeyVaultRoles[i].name]
var relayContainerNames = [for (grant, i) in filter(relayGrants, g => g.role.scope == 'mimeContainer'): relayContainerRoles[i].name]
var relayQueueNames = [for (grant, i) in filter(relayGrants, g => g.role.scope == 'outboxQueue'): relayQueueRoles[i].name]
var relaySendersNames = [for (grant, i) in filter(relayGrants, g => g.role.scope == 'relaySendersContainer'): relaySendersRoles[i].name]
var relayActivityNames = [for (grant, i) in filter(relayGrants, g => g.role.scope == 'relayActivityContainer'): relayActivityRoles[i].name]
var relayMonitoringNames = [for (grant, i) in filter(relayGrants, g => g.role.scope == 'applicationInsights'): relayMonitoringRoles[i].name]

output roleAssignmentNames array = concat(
  appStorageNames,
  appKeyVaultNames,
  appMonitoringNames,
  empty(developerPrincipalId) ? [] : concat(developerStorageNames, developerKeyVaultNames),
  relayContainerNames,
  relayQueueNames,
  relaySendersNames,
  relayActivityNames,
  relayMonitoringNames
)
