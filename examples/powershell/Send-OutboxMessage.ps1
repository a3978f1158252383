<#
.SYNOPSIS
  Send an email through oauth-outbox from PowerShell: POST a queue message v1 to /api/messages.
.DESCRIPTION
  Invoke-RestMethod sends the message as UTF-8 JSON. The function answers 202 {"id": ...}, or 400
  {"error", "reasons"} naming each bad field. Works in Windows PowerShell 5.1 and PowerShell 7.
.EXAMPLE
  ./Send-OutboxMessage.ps1 -OutboxUrl https://<function app>.azurewebsites.net -FunctionKey <key> -To someone@example.com
#>
param(
  [Parameter(Mandatory)] [string] $OutboxUrl,
  [string] $FunctionKey = $env:OUTBOX_FUNCTION_KEY,
  [Parameter(Mandatory)] [string[]] $To,
  [string] $Subject = 'Hello from PowerShell',
  # Your idempotency key: the same id twice gives one email.
  [string] $Id = "powershell-$([guid]::NewGuid())"
)
$ErrorActionPreference = 'Stop'

$message = @{ id = $Id; to = $To; subject = $Subject; text = 'Sent through oauth-outbox.' }
# Bytes, not a string: Windows PowerShell 5.1 would otherwise send non-ASCII text in the wrong encoding.
$body = [System.Text.Encoding]::UTF8.GetBytes(($message | ConvertTo-Json -Depth 5))
try {
  $reply = Invoke-RestMethod -Method Post -Uri "$($OutboxUrl.TrimEnd('/'))/api/messages" -Body $body `
    -ContentType 'application/json; charset=utf-8' -Headers @{ 'x-functions-key' = $FunctionKey }
  "Accepted: $($reply.id)"
} catch {
  $details = $_.ErrorDetails.Message
  throw "Refused: $(if ($details) { ($details | ConvertFrom-Json).reasons } else { $_.Exception.Message })"
}
