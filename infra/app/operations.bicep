// What an administrator looks at: an Azure Monitor workbook over the app's structured logs in Application
// Insights, and log search alert rules that mail the alert receivers.
//
// The app writes one JSON object per log line, `{"event":"mail.sent","account":…}` (shared/log/logger.ts); in
// Application Insights each line is a row of `traces` whose message holds it. The queries live in queries/*.kql,
// one file each, shared by the workbook and the alert rules; test/monitoringQueries.test.ts checks that they name
// only events and fields the code writes.

param location string = resourceGroup().location
param tags object = {}

@description('Resource id of the Application Insights component that receives the app\'s logs.')
param applicationInsightsId string

param workbookDisplayName string = 'oauth-outbox'

@description('Name of the action group that mails the alert receivers.')
param actionGroupName string

@description('Prefix of the alert rules\' names.')
param alertRuleNamePrefix string

@description('Addresses that receive the alerts; none: the rules fire in the portal only.')
param alertReceivers array = []

@description('Alert when more messages than this failed for good within an hour, for one account.')
@minValue(1)
param failedMessagesPerHourThreshold int = 10

@description('Alert when a message has waited unsent longer than this many hours. The rule looks back two days, so at most 47.')
@minValue(1)
@maxValue(47)
param oldestWaitingHoursThreshold int = 24

var applicationInsightsType = 'microsoft.insights/components'

// A workbook item that runs one query over the time range chosen at the top.
func queryItem(name string, title string, query string, visualization string) object => {
  type: 3
  name: name
  content: {
    version: 'KqlItem/1.0'
    title: title
    query: query
    size: 0
    queryType: 0
    resourceType: 'microsoft.insights/components'
    timeContextFromParameter: 'TimeRange'
    visualization: visualization
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'about'
      content: {
        json: '## oauth-outbox\nWhat the app did, from its structured logs in Application Insights (`traces`, one JSON event per line). Counts are corrected for sampling (`itemCount`). Per-message detail is in the table `deliveries`; the status page shows each account now.'
      }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        parameters: [
          {
            id: '4b7d8d6e-0d4f-4a57-9f0e-3c2f9b1f5a10'
            version: 'KqlParameterItem/1.0'
            name: 'TimeRange'
            label: 'Time range'
            type: 4
            isRequired: true
            value: {
              durationMs: 86400000
            }
            typeSettings: {
              allowCustom: true
              selectableValues: [
                { durationMs: 3600000 }
                { durationMs: 14400000 }
                { durationMs: 86400000 }
                { durationMs: 259200000 }
                { durationMs: 604800000 }
                { durationMs: 2592000000 }
              ]
            }
          }
        ]
        style: 'pills'
        queryType: 0
        resourceType: applicationInsightsType
      }
    }
    queryItem('messages', 'Messages sent, failed and deferred per hour and account', loadTextContent('queries/messages-per-hour.kql'), 'timechart')
    queryItem('failureCodes', 'Top failure codes and their reasons', loadTextContent('queries/failure-codes.kql'), 'table')
    queryItem('oldestWaiting', 'Messages still waiting, and the age of the oldest (hours)', loadTextContent('queries/oldest-waiting.kql'), 'table')
    queryItem('accountsNotReady', 'Accounts not ready at the last token refresh run', loadTextContent('queries/accounts-not-ready.kql'), 'table')
    queryItem('refreshRuns', 'Token refresh outcomes per day', loadTextContent('queries/token-refresh-runs.kql'), 'barchart')
    queryItem('refreshFailures', 'Token refresh failures', loadTextContent('queries/token-refresh-failures.kql'), 'table')
    queryItem('relaySessions', 'SMTP relay: sessions per device (where the relay sends its events here)', loadTextContent('queries/relay-devices.kql'), 'table')
    queryItem('relayRefusals', 'SMTP relay: refusals per device', loadTextContent('queries/relay-refusals.kql'), 'table')
  ]
  fallbackResourceIds: [
    applicationInsightsId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name is a GUID; this one is stable per resource group, so provisioning again updates it.
  name: guid(resourceGroup().id, 'oauth-outbox-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: workbookDisplayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(workbookContent)
    version: 'Notebook/1.0'
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertReceivers)) {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'outbox'
    enabled: true
    emailReceivers: [
      for (address, i) in alertReceivers: {
        name: 'receiver-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = empty(alertReceivers) ? [] : [actionGroup.id]

// One log search alert rule per entry. Every rule reads Application Insights; `dimension` splits the alert per
// value of that column (one alert per account), `measure` is the column compared with the threshold.
var rules = [
  {
    name: 'needs-reauthorization'
    displayName: 'oauth-outbox: an account needs to be authorized again'
    description: 'A token refresh found the grant revoked or expired, or messages wait for an admin to authorize the account again. Open the status page and use Authorize.'
    severity: 1
    query: loadTextContent('queries/needs-reauthorization.kql')
    measure: 'signals'
    aggregation: 'Total'
    dimension: 'account'
    threshold: 0
    frequency: 'PT1H'
    window: 'PT2H'
    autoMitigate: true
  }
  {
    name: 'failures'
    displayName: 'oauth-outbox: messages failing'
    description: 'More than ${failedMessagesPerHourThreshold} messages of one account failed for good within an hour. The workbook lists the failure codes and reasons.'
    severity: 2
    query: loadTextContent('queries/failures-per-account.kql')
    measure: 'failures'
    aggregation: 'Total'
    dimension: 'account'
    threshold: failedMessagesPerHourThreshold
    frequency: 'PT15M'
    window: 'PT1H'
    autoMitigate: true
  }
  {
    name: 'oldest-waiting'
    displayName: 'oauth-outbox: messages waiting too long'
    description: 'A message of this account has waited unsent for more than ${oldestWaitingHoursThreshold} hours. It fails "expired" once MESSAGE_EXPIRY_DAYS is reached.'
    severity: 2
    query: loadTextContent('queries/oldest-waiting.kql')
    measure: 'oldestWaitingHours'
    aggregation: 'Maximum'
    dimension: 'account'
    threshold: oldestWaitingHoursThreshold
    frequency: 'PT1H'
    window: 'P2D'
    autoMitigate: true
  }
  {
    name: 'poison-queue'
    displayName: 'oauth-outbox: a message went to the poison queue'
    description: 'The Functions host moved a message to mail-outbox-poison after sendMail failed on each of its tries. npm run poison lists them with the ledger row (code poisoned, the last error); npm run poison -- --retry puts them back once the cause is fixed.'
    severity: 1
    query: loadTextContent('queries/poison-queue.kql')
    measure: 'moved'
    aggregation: 'Total'
    dimension: ''
    threshold: 0
    frequency: 'PT15M'
    window: 'PT1H'
    // Not resolved by itself when no further message moves: the queue is not empty until someone empties it.
    autoMitigate: false
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: '${alertRuleNamePrefix}${rule.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        applicationInsightsId
      ]
      targetResourceTypes: [
        applicationInsightsType
      ]
      evaluationFrequency: rule.frequency
      windowSize: rule.window
      autoMitigate: rule.autoMitigate
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: rule.aggregation
            metricMeasureColumn: rule.measure
            dimensions: empty(rule.dimension)
              ? []
              : [
                  {
                    name: rule.dimension
                    operator: 'Include'
                    values: [
                      '*'
                    ]
                  }
                ]
            operator: 'GreaterThan'
            threshold: rule.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: actionGroups
      }
    }
  }
]

output workbookId string = workbook.id
output alertRuleNames array = [for (rule, i) in rules: alertRules[i].name]
