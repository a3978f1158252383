import type { HttpResponseInit } from '@azure/functions';

/**
 * HTML for the pages people see (OAuth callback, admin page). Everything interpolated into `html` is escaped
 * unless it was built by `html` itself or wrapped in `raw()`, so a reflected parameter cannot become markup.
 */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

/** Trusted markup, inserted as it is. Never pass request data through this. */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (value === undefined || value === null || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(value);
}

/** Tagged template: `html\`<p>${userInput}</p>\`` escapes userInput; nested `html` fragments and arrays compose. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (strings[index + 1] ?? '');
  });
  return new SafeHtml(out);
}

const STYLE = `
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:42rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}
.ok h1{color:#17692f}.fail h1{color:#a32020}
code,.mono{font-family:ui-monospace,Consolas,monospace;font-size:.9em;background:#f0f1f4;padding:.1em .3em;border-radius:3px;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
.note{color:#555;font-size:.9em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e5ea}
button,.button{display:inline-block;padding:.4rem .9rem;border:1px solid #2f5bd3;border-radius:4px;background:#2f5bd3;color:#fff;text-decoration:none;cursor:pointer}
`.trim();

export interface PageOptions {
  title: string;
  body: SafeHtml;
  /** A class on <main>, e.g. "ok" or "fail". */
  tone?: string;
}

/** A complete, self-contained page: inline CSS only, no scripts, no external resources. */
export function page({ title, body, tone }: PageOptions): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${title} · oauth-outbox</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<main${tone ? html` class="${tone}"` : ''}>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
}

export const HTML_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

export function htmlResponse(status: number, body: SafeHtml, headers: Record<string, string> = {}): HttpResponseInit {
  return { status, body: body.value, headers: { ...HTML_SECURITY_HEADERS, ...headers } };
}
