// The storage lifecycle rule that deletes the SMTP relay's MIME messages in mail-mime. A blob there must outlive the
// message that references it: the message may wait unsent up to MESSAGE_EXPIRY_DAYS (an app setting, fractions
// allowed) and is sent from the blob until then. So the rule keeps a blob the expiry rounded up to whole days, and
// one day more for a message that waited in the queue before its first attempt (the expiry counts from then).
// Deployed after the app settings, whose value it follows, whether azd or an administrator set it.

param storageAccountName string

@description('Blob container whose blobs the rule deletes.')
param containerName string

@description('MESSAGE_EXPIRY_DAYS as the app has it (a decimal number of days); empty: the code\'s default.')
param messageExpiryDays string = ''

@description('The code\'s default of MESSAGE_EXPIRY_DAYS (DEFAULT_MESSAGE_EXPIRY_DAYS in shared/delivery/policy.ts).')
param defaultMessageExpiryDays int = 7

var expiry = trim(messageExpiryDays)
var expiryParts = split(expiry, '.')
var wholePart = first(expiryParts)
var fractionPart = length(expiryParts) > 1 ? last(expiryParts) : ''
// Whole days, rounded up: "7" is 7, "7.5" is 8, "0.25" is 1.
var expiryWholeDays = empty(expiry)
  ? defaultMessageExpiryDays
  : int(empty(wholePart) ? '0' : wholePart) + (empty(replace(fractionPart, '0', '')) ? 0 : 1)

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

// Lifecycle management runs about once a day, so a blob can outlive its limit by up to a day.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2025-01-01' = {
  parent: storageAccount
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-${containerName}'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${containerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: expiryWholeDays + 1
                }
              }
            }
          }
        }
      ]
    }
  }
}

@description('Days after its last write that a blob in the container is deleted.')
output retentionDays int = expiryWholeDays + 1
