# azd postprovision hook: removes the role assignments the template no longer declares, then prints what to register
# with Microsoft or Google and where to authorize each account.
# Reads the deployment outputs that azd exports to hooks. Prints no secret: the function key is fetched by you.
$ErrorActionPreference = 'Stop'

$baseUrl = $env:SERVICE_API_BASE_URL
if ([string]::IsNullOrEmpty($baseUrl)) {
  Write-Error 'SERVICE_API_BASE_URL is not set: run this hook through azd (azd provision, azd up or azd hooks run postprovision).'
  exit 1
}
$redirectUri = if ($env:OAUTH_REDIRECT_URI) { $env:OAUTH_REDIRECT_URI } else { "$baseUrl/api/oauth/callback" }
$appName = if ($env:SERVICE_API_NAME) { $env:SERVICE_API_NAME } else { '<function app name>' }
$resourceGroup = if ($env:AZURE_RESOURCE_GROUP) { $env:AZURE_RESOURCE_GROUP } else { '<resource group>' }
$vaultName = if ($env:AZURE_KEY_VAULT_NAME) { $env:AZURE_KEY_VAULT_NAME } else { '<key vault name>' }
$accountIds = @()
if ($env:MAIL_ACCOUNT_IDS) {
  $accountIds = $env:MAIL_ACCOUNT_IDS.Split(',') | Where-Object { $_ -ne '' }
}

# A deployment never deletes what it stopped declaring: without this, GRANT_DEVELOPER_ACCESS=false or an emptied
# RELAY_PRINCIPAL_ID would take no access away. Fails the hook (and azd provision) if it cannot check.
Write-Output ''
node (Join-Path $PSScriptRoot 'removeStaleRoleAssignments.mjs')
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

Write-Output ''
Write-Output "oauth-outbox is provisioned: $baseUrl"
Write-Output ''
Write-Output '1. Register this redirect URI with the identity provider of your accounts:'
Write-Output ''
Write-Output "     $redirectUri"
Write-Output ''
Write-Output '   Microsoft Entra ID: App registration > Authentication > Add a platform > Web (docs/provider-microsoft.md)'
Write-Output '   Google Cloud:       OAuth client of type Web application > Authorized redirect URIs (docs/provider-google.md)'
Write-Output ''
Write-Output "2. Store client secrets in Key Vault $vaultName (never in MAIL_ACCOUNTS), for example:"
Write-Output ''
Write-Output "     az keyvault secret set --vault-name $vaultName --name <secret-name> --value '<client secret>'"
Write-Output ''
Write-Output '3. Get the function key (it exists once the code is deployed, at the end of azd up or after azd deploy):'
Write-Output ''
Write-Output "     az functionapp keys list --resource-group $resourceGroup --name $appName --query functionKeys.default --output tsv"
Write-Output ''
Write-Output "4. Authorize each account in a browser, signed in as the account's mailbox:"
Write-Output ''
if ($accountIds.Count -gt 0) {
  foreach ($accountId in $accountIds) {
    Write-Output "     ${accountId}: $baseUrl/api/accounts/$accountId/authorize?code=<function key>"
  }
} else {
  Write-Output '     No accounts configured yet. Set them and provision again:'
  Write-Output '       azd env set MAIL_ACCOUNTS ''[{"id":"default","provider":"microsoft",...}]'''
  Write-Output '       azd provision'
}
Write-Output ''
Write-Output '   Accounts with flow client_credentials need no authorization.'
Write-Output "   Status of all accounts: $baseUrl/api/status?code=<function key>"
Write-Output ''
if ($env:API_IDENTITY_PRINCIPAL_ID -and $env:AZURE_TENANT_ID) {
  Write-Output "Secretless Microsoft accounts: add a federated credential to the app registration that trusts the app's identity:"
  Write-Output "     issuer:   https://login.microsoftonline.com/$($env:AZURE_TENANT_ID)/v2.0"
  Write-Output "     subject:  $($env:API_IDENTITY_PRINCIPAL_ID)"
  Write-Output '     audience: api://AzureADTokenExchange'
  Write-Output ''
}
node (Join-Path $PSScriptRoot 'writeRelayConfig.mjs')
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Output ''
if ($env:MONITORING_WORKBOOK_ID) {
  Write-Output "Monitoring: workbook `"oauth-outbox`" and alert rules in resource group $resourceGroup (Azure portal > Monitor)."
  Write-Output "   Alerts mail ALERT_RECIPIENTS and each account's `"alerts`" receivers (docs/deployment.md, Monitoring)."
  Write-Output ''
}
if ($env:ADMIN_SIGN_IN_REDIRECT_URI) {
  Write-Output 'Admin sign-in (App Service Authentication) is on. On its app registration:'
  Write-Output "     redirect URI (Web):  $($env:ADMIN_SIGN_IN_REDIRECT_URI)"
  Write-Output "     federated credential trusting the app's identity, as above (subject $($env:API_IDENTITY_PRINCIPAL_ID))"
  Write-Output "   Then check that $baseUrl/api/status without signing in is sent to the sign-in page (docs/deployment.md)."
  Write-Output ''
}
