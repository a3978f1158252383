// Key Vault for refresh tokens, access tokens and client secrets. Authorization by Azure RBAC only (no access
// policies); the function app's identity gets Key Vault Secrets Officer on this vault alone (rbac.bicep).
//
// Declared here rather than with the Azure Verified Module: every Key Vault control-plane API version before
// 2026-02-01 retires on 2027-02-27 ("Update the Azure Key Vault API version you use", Microsoft Learn), and the
// newest AVM key-vault/vault module we can use (0.14.0) deploys 2024-11-01. test/bicepCompile.test.ts refuses any
// older Microsoft.KeyVault version in the compiled template. The properties are the ones the module wrote, so an
// existing vault is updated in place, and the diagnostic setting keeps the module's name.

@maxLength(24)
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Purge protection. On by default: a deleted vault (with every refresh token in it) stays recoverable for the retention period, and nobody can purge it before. Once on it stays on.')
param enablePurgeProtection bool = true

@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Log Analytics workspace that receives the vault\'s audit logs and metrics; empty for none.')
param logAnalyticsWorkspaceId string = ''

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    accessPolicies: []
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // The service refuses an explicit false for purge protection: off is "not set".
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    createMode: 'default'
    // Flex Consumption without a virtual network reaches the vault over its public endpoint; RBAC guards it.
    publicNetworkAccess: 'Enabled'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: '${name}-diagnosticSettings'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output resourceId string = vault.id
