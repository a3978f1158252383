// Key Vault for refresh tokens, access tokens and client secrets. Authorization by Azure RBAC only (no access
// policies); the function app's identity gets Key Vault Secrets Officer on this vault alone (rbac.bicep).

@maxLength(24)
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Purge protection. Off for development so that azd down --purge can remove the vault; once on it stays on.')
param enablePurgeProtection bool = false

@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Log Analytics workspace that receives the vault audit logs; empty for none.')
param logAnalyticsWorkspaceId string = ''

module vault 'br/public:avm/res/key-vault/vault:0.14.0' = {
  name: 'key-vault'
  params: {
    name: name
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // The module sends null rather than false: the service refuses an explicit false for purge protection.
    enablePurgeProtection: enablePurgeProtection
    enableVaultForDeployment: false
    enableVaultForDiskEncryption: false
    enableVaultForTemplateDeployment: false
    // Flex Consumption without a virtual network reaches the vault over its public endpoint; RBAC guards it.
    publicNetworkAccess: 'Enabled'
    diagnosticSettings: !empty(logAnalyticsWorkspaceId)
      ? [
          {
            workspaceResourceId: logAnalyticsWorkspaceId
          }
        ]
      : []
  }
}

output name string = vault.outputs.name
output uri string = vault.outputs.uri
output resourceId string = vault.outputs.resourceId
