// The function app: Flex Consumption (FC1), Node.js, a user-assigned managed identity for every connection.
// App settings are written after the site exists, so that PUBLIC_BASE_URL can use its real default host name.
//
// What `azd provision` does to the app settings: it reads the current ones and writes them back with its own on
// top. A setting set by hand that Bicep does not manage stays. The settings with an azd environment variable
// (MAIL_ACCOUNTS, MESSAGE_EXPIRY_DAYS, ...) are written only when that variable is set; left empty, the app keeps
// the value it has (or, the first time, the code's default). The connection settings below are always Bicep's.

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

@description('Public https base URL; empty means https://<default host name>. A trailing slash is dropped.')
param publicBaseUrl string = ''

@description('Application (client) id of the app registration for App Service Authentication in front of the admin pages; empty leaves it off.')
param adminSignInClientId string = ''

@description('Object ids allowed through the admin sign-in; empty allows whoever the app registration lets sign in.')
param adminSignInAllowedObjectIds array = []

@description('MESSAGE_EXPIRY_DAYS: how long a message may wait unsent before it fails "expired" (days, fractions allowed). Empty: the app keeps its current value (7 when never set).')
param messageExpiryDays string = ''

@description('RESULT_EVENTS: which outcomes go to queue mail-results. Empty: the app keeps its current value (all when never set).')
@allowed([
  ''
  'all'
  'failures'
  'none'
])
param resultEvents string = ''

@description('TEST_EMAIL_WAIT_SECONDS: how long the test-email route waits for a verdict. Empty: the app keeps its current value (20 when never set).')
param testEmailWaitSeconds string = ''

@description('REFRESH_SPREAD_MINUTES: the refresh run spreads its accounts over at most this many minutes. Empty: the app keeps its current value (8 when never set).')
param refreshSpreadMinutes string = ''

@description('REFRESH_CONCURRENCY: refreshes the run keeps in flight at once. Empty: the app keeps its current value (8 when never set).')
param refreshConcurrency string = ''

@description('FTP and SCM (Kudu) basic authentication with publishing credentials. Off: deployments authenticate with Microsoft Entra ID, as azd does.')
param allowBasicPublishingCredentials bool = false

@description('Log Analytics workspace that receives the function app\'s platform logs and metrics; empty for none.')
param logAnalyticsWorkspaceId string = ''

@description('Further app settings, merged under the ones below.')
param additionalAppSettings object = {}

var defaultRefreshSchedule = '0 0 * * * *'

resource stg 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

module api 'br/public:avm/res/web/site:0.24.0' = {
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
      // App Service refuses TLS 1.0 and 1.1 for inbound connections from 2027-05-31.
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    httpsOnly: true
    basicPublishingCredentialsPolicies: [
      {
        name: 'ftp'
        allow: allowBasicPublishingCredentials
      }
      {
        name: 'scm'
        allow: allowBasicPublishingCredentials
      }
    ]
    diagnosticSettings: empty(logAnalyticsWorkspaceId)
      ? []
      : [
          {
            workspaceResourceId: logAnalyticsWorkspaceId
            logCategoriesAndGroups: [
              {
                categoryGroup: 'allLogs'
              }
            ]
            metricCategories: [
              {
                category: 'AllMetrics'
              }
            ]
          }
        ]
  }
}

resource site 'Microsoft.Web/sites@2024-11-01' existing = {
  name: name
}

// The app settings as they are before this deployment writes them (the first time, those the site was created with).
var currentAppSettings = list('${site.id}/config/appsettings', '2024-11-01').properties

// A trailing slash would make `${PUBLIC_BASE_URL}/api/oauth/callback` a different redirect URI than the one registered.
var givenBaseUrl = endsWith(publicBaseUrl, '/') ? take(publicBaseUrl, length(publicBaseUrl) - 1) : publicBaseUrl

// Values the app needs from the first deployment on; a value set since (by azd or by hand) replaces them.
// Referencing the module output also orders the app settings (and the list() above) after the site.
var firstDeploymentSettings = {
  MAIL_ACCOUNTS: '[]'
  REFRESH_SCHEDULE: defaultRefreshSchedule
  PUBLIC_BASE_URL: 'https://${api.outputs.defaultHostname}'
}

// The settings with an azd environment variable, each written only when the variable is set.
var azdEnvironmentSettings = union(
  empty(mailAccounts) ? {} : { MAIL_ACCOUNTS: string(mailAccounts) },
  empty(alertRecipients) ? {} : { ALERT_RECIPIENTS: alertRecipients },
  empty(refreshSchedule) ? {} : { REFRESH_SCHEDULE: refreshSchedule },
  empty(givenBaseUrl) ? {} : { PUBLIC_BASE_URL: givenBaseUrl },
  empty(messageExpiryDays) ? {} : { MESSAGE_EXPIRY_DAYS: messageExpiryDays },
  empty(resultEvents) ? {} : { RESULT_EVENTS: resultEvents },
  empty(testEmailWaitSeconds) ? {} : { TEST_EMAIL_WAIT_SECONDS: testEmailWaitSeconds },
  empty(refreshSpreadMinutes) ? {} : { REFRESH_SPREAD_MINUTES: refreshSpreadMinutes },
  empty(refreshConcurrency) ? {} : { REFRESH_CONCURRENCY: refreshConcurrency }
)

var adminSignIn = !empty(adminSignInClientId)
// App Service Authentication signs in with the app's managed identity as a federated credential of the app
// registration: no client secret. The setting names the identity; the app registration must trust it.
var adminSignInSettings = adminSignIn ? { OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID: identityClientId } : {}

// Connections and identity: always what this deployment made, whatever was set by hand.
var connectionSettings = {
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
  // Telemetry with Microsoft Entra authentication (local authentication is off on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

// Later arguments win: first-deployment values, then what the app has now, then azd's, then the connections.
var appSettingsValues = union(
  firstDeploymentSettings,
  currentAppSettings,
  additionalAppSettings,
  adminSignInSettings,
  azdEnvironmentSettings,
  connectionSettings
)

// As the app reads it: a trailing slash set by hand is dropped there too.
var mergedBaseUrl = appSettingsValues.PUBLIC_BASE_URL
var effectiveBaseUrl = endsWith(mergedBaseUrl, '/') ? take(mergedBaseUrl, length(mergedBaseUrl) - 1) : mergedBaseUrl

// Flex Consumption sets the runtime in functionAppConfig: FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE and similar settings are not allowed here.
resource appSettings 'Microsoft.Web/sites/config@2024-11-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettingsValues
}

// App Service Authentication (Microsoft Entra ID) in front of the admin pages, when adminSignInClientId is set.
// Sign-in is required everywhere except the routes that must stay reachable without it: the OAuth callback (the
// provider redirects the browser there), health, and the machine route that producers call with a function key.
// The function keys stay required on every route that has one.
resource authSettings 'Microsoft.Web/sites/config@2024-11-01' = if (adminSignIn) {
  parent: site
  name: 'authsettingsV2'
  dependsOn: [
    appSettings
  ]
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: [
        '/api/oauth/callback'
        '/api/health'
        '/api/messages'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: adminSignInClientId
          clientSecretSettingName: 'OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID'
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${adminSignInClientId}'
            adminSignInClientId
          ]
          defaultAuthorizationPolicy: empty(adminSignInAllowedObjectIds)
            ? null
            : {
                allowedPrincipals: {
                  identities: adminSignInAllowedObjectIds
                }
              }
        }
      }
    }
    login: {
      // The app needs the signed-in user's identity, not their tokens; Flex Consumption has no file system to keep them.
      tokenStore: {
        enabled: false
      }
    }
  }
}

output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_HOSTNAME string = api.outputs.defaultHostname
output SERVICE_API_BASE_URL string = effectiveBaseUrl
// What the app now has (empty: the code's default of 7 days); the mail-mime lifecycle rule is derived from it.
output MESSAGE_EXPIRY_DAYS string = appSettingsValues.?MESSAGE_EXPIRY_DAYS ?? ''
output ADMIN_SIGN_IN_REDIRECT_URI string = adminSignIn ? '${effectiveBaseUrl}/.auth/login/aad/callback' : ''
