/**
 * The sign-in and consent pages under `/interaction/<uid>`, where Microsoft or Google would show theirs:
 * a login form (login hint prefilled), a consent page listing the requested scopes, and Cancel, which ends the
 * authorization with access_denied.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { errors, type InteractionDetails } from 'oidc-provider';
import type { Users } from './directory';

export async function handleInteraction(
  provider: Provider,
  users: Users,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
  const action = match?.[2] ?? 'show';
  if (!match || (action === 'show') !== (req.method === 'GET')) {
    sendHtml(res, 404, page('Not found', '<p>Not found.</p>'));
    return;
  }

  let interaction: InteractionDetails;
  try {
    interaction = await provider.interactionDetails(req, res);
  } catch (error) {
    if (!(error instanceof errors.SessionNotFound)) throw error;
    sendHtml(res, 400, page('Session expired', '<p>This sign-in attempt has expired. Start again from the application.</p>'));
    return;
  }
  if (interaction.uid !== match[1]) {
    sendHtml(res, 400, page('Error', '<p>Unknown sign-in attempt.</p>'));
    return;
  }
  const prompt = interaction.prompt.name;
  const isLogin = prompt === 'login' || prompt === 'select_account';

  switch (action) {
    case 'show':
      if (isLogin) sendHtml(res, 200, loginPage(interaction));
      else if (prompt === 'consent') sendHtml(res, 200, consentPage(interaction));
      else sendHtml(res, 400, page('Error', `<p>Unsupported prompt ${escapeHtml(prompt)}.</p>`));
      return;

    case 'login': {
      if (!isLogin) break;
      const form = new URLSearchParams(await readBody(req));
      const user = users.authenticate(form.get('login') ?? '', form.get('password') ?? '');
      if (!user) {
        sendHtml(res, 401, loginPage(interaction, form.get('login') ?? '', 'Incorrect login or password.'));
        return;
      }
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.id }, ...(prompt === 'select_account' ? { select_account: {} } : {}) },
        { mergeWithLastSubmission: false },
      );
      return;
    }

    case 'confirm': {
      const {
        session,
        params,
        grantId,
        prompt: { details },
      } = interaction;
      if (prompt !== 'consent' || !session) break;
      const grant =
        (grantId ? await provider.Grant.find(grantId) : undefined) ??
        new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
        grant.addResourceScope(resource, scopes.join(' '));
      }
      const savedGrantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId: savedGrantId } }, { mergeWithLastSubmission: true });
      return;
    }

    case 'abort':
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'The user declined to authorize the application.' },
        { mergeWithLastSubmission: false },
      );
      return;
  }
  sendHtml(res, 400, page('Error', `<p>Unexpected ${escapeHtml(action)} for prompt ${escapeHtml(prompt)}.</p>`));
}

function loginPage(interaction: InteractionDetails, login?: string, error?: string): string {
  const base = `/interaction/${interaction.uid}`;
  const hint = login ?? interaction.params.login_hint ?? '';
  return page(
    'Sign in',
    `<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(interaction.params.client_id)}</strong></p>
${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${base}/login">
<p><label for="login">Login</label> <input id="login" name="login" type="text" autocomplete="username" value="${escapeHtml(hint)}" required autofocus></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p>
</form>
<form method="post" action="${base}/abort"><p><button type="submit">Cancel</button></p></form>`,
  );
}

function consentPage(interaction: InteractionDetails): string {
  const base = `/interaction/${interaction.uid}`;
  const { missingOIDCScope = [], missingResourceScopes = {} } = interaction.prompt.details;
  const requested = [...missingOIDCScope, ...Object.values(missingResourceScopes).flat()];
  const scopes = requested.length > 0 ? requested : (interaction.params.scope?.split(' ') ?? []);
  return page(
    'Permissions requested',
    `<h1>Permissions requested</h1>
<p><strong>${escapeHtml(interaction.params.client_id)}</strong> asks for:</p>
<ul>${scopes.map((scope) => `<li>${escapeHtml(scope)}</li>`).join('')}</ul>
<form method="post" action="${base}/confirm"><p><button type="submit">Continue</button></p></form>
<form method="post" action="${base}/abort"><p><button type="submit">Cancel</button></p></form>`,
  );
}

export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>`;
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

export async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > limit) throw new Error('request body too large');
  }
  return body;
}
