#!/bin/sh
# azd postprovision hook: removes the role assignments the template no longer declares, then prints what to register
# with Microsoft or Google and where to authorize each account.
# Reads the deployment outputs that azd exports to hooks. Prints no secret: the function key is fetched by you.
set -eu

base_url="${SERVICE_API_BASE_URL:-}"
if [ -z "$base_url" ]; then
  echo "SERVICE_API_BASE_URL is not set: run this hook through azd (azd provision, azd up or azd hooks run postprovision)." >&2
  exit 1
fi
redirect_uri="${OAUTH_REDIRECT_URI:-$base_url/api/oauth/callback}"
app_name="${SERVICE_API_NAME:-<function app name>}"
resource_group="${AZURE_RESOURCE_GROUP:-<resource group>}"
vault_name="${AZURE_KEY_VAULT_NAME:-<key vault name>}"
account_ids="${MAIL_ACCOUNT_IDS:-}"

# A deployment never deletes what it stopped declaring: without this, GRANT_DEVELOPER_ACCESS=false or an emptied
# RELAY_PRINCIPAL_ID would take no access away. Fails the hook (and azd provision) if it cannot check.
echo ""
node "$(dirname "$0")/removeStaleRoleAssignments.mjs"

echo ""
echo "oauth-outbox is provisioned: $base_url"
echo ""
echo "1. Register this redirect URI with the identity provider of your accounts:"
echo ""
echo "     $redirect_uri"
echo ""
echo "   Microsoft Entra ID: App registration > Authentication > Add a platform > Web (docs/provider-microsoft.md)"
echo "   Google Cloud:       OAuth client of type Web application > Authorized redirect URIs (docs/provider-google.md)"
echo ""
echo "2. Store client secrets in Key Vault $vault_name (never in MAIL_ACCOUNTS), for example:"
echo ""
echo "     az keyvault secret set --vault-name $vault_name --name <secret-name> --value '<client secret>'"
echo ""
echo "3. Get the function key (it exists once the code is deployed, at the end of azd up or after azd deploy):"
echo ""
echo "     az functionapp keys list --resource-group $resource_group --name $app_name --query functionKeys.default --output tsv"
echo ""
echo "4. Authorize each account in a browser, signed in as the account's mailbox:"
echo ""
if [ -n "$account_ids" ]; then
  old_ifs=$IFS
  IFS=','
  for account_id in $account_ids; do
    if [ -n "$account_id" ]; then
      echo "     $account_id: $base_url/api/accounts/$account_id/authorize?code=<function key>"
    fi
  done
  IFS=$old_ifs
else
  echo "     No accounts configured yet. Set them and provision again:"
  echo "       azd env set MAIL_ACCOUNTS '[{\"id\":\"default\",\"provider\":\"microsoft\",...}]'"
  echo "       azd provision"
fi
echo ""
echo "   Accounts with flow client_credentials need no authorization."
echo "   Status of all accounts: $base_url/api/status?code=<function key>"
echo ""
if [ -n "${API_IDENTITY_PRINCIPAL_ID:-}" ] && [ -n "${AZURE_TENANT_ID:-}" ]; then
  echo "Secretless Microsoft accounts: add a federated credential to the app registration that trusts the app's identity:"
  echo "     issuer:   https://login.microsoftonline.com/$AZURE_TENANT_ID/v2.0"
  echo "     subject:  $API_IDENTITY_PRINCIPAL_ID"
  echo "     audience: api://AzureADTokenExchange"
  echo ""
fi
node "$(dirname "$0")/writeRelayConfig.mjs"
echo ""
if [ -n "${MONITORING_WORKBOOK_ID:-}" ]; then
  echo "Monitoring: workbook \"oauth-outbox\" and alert rules in resource group $resource_group (Azure portal > Monitor)."
  echo "   Alerts mail ALERT_RECIPIENTS and each account's \"alerts\" receivers (docs/deployment.md, Monitoring)."
  echo ""
fi
if [ -n "${ADMIN_SIGN_IN_REDIRECT_URI:-}" ]; then
  echo "Admin sign-in (App Service Authentication) is on. On its app registration:"
  echo "     redirect URI (Web):  $ADMIN_SIGN_IN_REDIRECT_URI"
  echo "     federated credential trusting the app's identity, as above (subject ${API_IDENTITY_PRINCIPAL_ID:-<API_IDENTITY_PRINCIPAL_ID>})"
  echo "   Then check that $base_url/api/status without signing in is sent to the sign-in page (docs/deployment.md)."
  echo ""
fi
