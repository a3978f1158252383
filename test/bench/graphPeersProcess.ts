/**
 * The Graph stand-in and the identity provider whose tokens it checks, in a process of their own, so that on a small
 * machine the server's CPU and memory are not taken from the client being measured (Graph is remote in production).
 * Requests: `start` { mailboxBudget? } → { url, accessToken (an app-only Graph token with roles Mail.Send), issuer,
 * clientId, clientSecret (for more such tokens) };
 * `stats` { from?, to? } → { taken, requests, throttled, takenInRange }.
 */
import { startGraphStandIn, type GraphStandIn } from '../../local/peers/graphStandIn';
import { startIdentityProvider, type IdentityProvider } from '../../local/peers/identity/identityProvider';
import { serve } from './ipc';

const CLIENT = { id: 'bench-graph', secret: 'bench-graph-secret' };
let idp: IdentityProvider | undefined;
let standIn: GraphStandIn | undefined;

serve(
  {
    async start(message) {
      const mailboxBudget = message.mailboxBudget as { perWindow: number; windowMs: number } | undefined;
      idp = await startIdentityProvider({
        clients: [
          {
            clientId: CLIENT.id,
            clientSecret: CLIENT.secret,
            authMethod: 'client_secret_post',
            grantTypes: ['client_credentials'],
          },
        ],
        users: [],
        appRolesByAudience: { 'https://graph.microsoft.com': ['Mail.Send'] },
      });
      const provider = idp;
      standIn = await startGraphStandIn({
        verifyAccessToken: (token) => provider.verifyAccessToken(token),
        keepReceived: false,
        ...(mailboxBudget ? { mailboxBudget } : {}),
      });
      const response = await fetch(`${idp.issuer}/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: CLIENT.id,
          client_secret: CLIENT.secret,
          scope: 'https://graph.microsoft.com/.default',
        }),
      });
      const { access_token: accessToken } = (await response.json()) as { access_token: string };
      return { url: standIn.url, accessToken, issuer: idp.issuer, clientId: CLIENT.id, clientSecret: CLIENT.secret };
    },
    stats(message) {
      const from = Number(message.from ?? 0);
      const to = Number(message.to ?? Number.MAX_SAFE_INTEGER);
      return {
        taken: standIn?.taken ?? 0,
        requests: standIn?.requests ?? 0,
        throttled: standIn?.throttled ?? 0,
        takenInRange: (standIn?.takenAt ?? []).filter((at) => at >= from && at < to).length,
      };
    },
  },
  async () => {
    await standIn?.stop();
    await idp?.stop();
  },
);
