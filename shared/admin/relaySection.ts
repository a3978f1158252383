import type { RelayActivity } from '../relay/relayActivity';
import { NO_DEVICE } from '../relay/relayActivity';
import { html, type SafeHtml } from '../web/html';
import { formatUtc, relativeTime } from '../web/timeText';

/**
 * The SMTP relays, as each last reported: per device the messages queued and refused since the relay started,
 * the last message, and the last refusal with the reply the device got and the client's address.
 */
export function relaySection(relays: readonly RelayActivity[], now: number): SafeHtml | string {
  if (relays.length === 0) return '';
  return html`<section class="relays" id="relays">
    <h2>SMTP relay</h2>
    ${relays.map((relay) => relayTable(relay, now))}
  </section>`;
}

function relayTable(relay: RelayActivity, now: number): SafeHtml {
  const devices = relay.devices.filter((d) => d.device !== NO_DEVICE || d.refused > 0);
  return html`<div class="relay" data-relay="${relay.relay}">
    <p>
      <code>${relay.relay}</code>
      <span class="note">running since ${when(relay.startedAt, now)}, last report ${when(relay.updatedAt, now)}</span>
    </p>
    <table class="devices">
      <thead>
        <tr>
          <th>Device</th>
          <th>Account</th>
          <th>Queued</th>
          <th>Refused</th>
          <th>Last message</th>
          <th>Last refusal</th>
        </tr>
      </thead>
      <tbody>
        ${devices.map(
          (device) =>
            html`<tr data-device="${device.device}">
              <td>
                ${device.device === NO_DEVICE ? html`<span class="note">no device (unknown user or network)</span>` : device.device}
              </td>
              <td>${device.account ? html`<code>${device.account}</code>` : '—'}</td>
              <td data-count="queued">${device.queued}</td>
              <td data-count="refused">${device.refused}</td>
              <td>
                ${device.lastMessage ? html`${when(device.lastMessage.at, now)}<br /><code>${device.lastMessage.id}</code>` : '—'}
              </td>
              <td data-refusal="${device.lastRefusal?.reason ?? ''}">
                ${
                  device.lastRefusal
                    ? html`${when(device.lastRefusal.at, now)} from <code>${device.lastRefusal.remote}</code><br /><code
                          >${device.lastRefusal.reply}</code
                        >`
                    : '—'
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function when(iso: string, now: number): SafeHtml {
  return html`<time datetime="${iso}">${formatUtc(iso)}</time> <span class="note">(${relativeTime(iso, now)})</span>`;
}
