// Send an email through oauth-outbox from .NET: POST a queue message v1 to /api/messages.
// HttpClient and System.Text.Json only. The function answers 202 {"id": ...}, or 400 {"error", "reasons"}
// naming each bad field.
//
//   OUTBOX_URL=https://<function app>.azurewebsites.net OUTBOX_FUNCTION_KEY=<key> MAIL_TO=someone@example.com dotnet run

using System.Net.Http.Json;
using System.Text.Json;

string Setting(string name, string? fallback = null) =>
    Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
        ? value
        : fallback ?? throw new InvalidOperationException($"Set {name}.");

var message = new Dictionary<string, object>
{
    // Your idempotency key: the same id twice gives one email.
    ["id"] = Setting("MAIL_ID", $"dotnet-{Guid.NewGuid()}"),
    ["to"] = new[] { Setting("MAIL_TO") },
    ["subject"] = Setting("MAIL_SUBJECT", "Hello from .NET"),
    ["text"] = "Sent through oauth-outbox.",
};

using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
using var request = new HttpRequestMessage(HttpMethod.Post, $"{Setting("OUTBOX_URL").TrimEnd('/')}/api/messages")
{
    Content = JsonContent.Create(message),
};
request.Headers.Add("x-functions-key", Setting("OUTBOX_FUNCTION_KEY", ""));

using var response = await http.SendAsync(request);
var body = await response.Content.ReadFromJsonAsync<JsonElement>();
if (!response.IsSuccessStatusCode)
{
    var reasons = body.TryGetProperty("reasons", out var r) ? r.GetString() : body.ToString();
    Console.Error.WriteLine($"Refused ({(int)response.StatusCode}): {reasons}");
    return 1;
}
Console.WriteLine($"Accepted: {body.GetProperty("id").GetString()}");
return 0;
