import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeHtml, html, htmlResponse, page, raw } from '../shared/web/html';

describe('html', () => {
  test('escapes every interpolated value, in text and in attributes', () => {
    const hostile = `"><script>alert('x')</script>&`;
    assert.equal(
      html`<p title="${hostile}">${hostile}</p>`.value,
      '<p title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</p>',
    );
  });

  test('composes nested fragments and arrays without double escaping, and drops null, undefined and false', () => {
    const items = ['a<b', 'c&d'].map((item) => html`<li>${item}</li>`);
    // prettier-ignore
    assert.equal(html`<ul>${items}</ul>${null}${undefined}${false}${0}`.value, '<ul><li>a&lt;b</li><li>c&amp;d</li></ul>0');
  });

  test('raw() is the only way to insert markup', () => {
    assert.equal(html`${raw('<br>')}${'<br>'}`.value, '<br>&lt;br&gt;');
    assert.equal(escapeHtml(42), '42');
  });

  test('pages are self-contained and served with strict headers', () => {
    const response = htmlResponse(400, page({ title: 'T <1>', body: html`<p>x</p>` }));
    const body = String(response.body);
    assert.match(body, /<title>T &lt;1&gt; · oauth-outbox<\/title>/);
    assert.doesNotMatch(body, /<script|<link|src=|https?:\/\//);
    assert.deepEqual(response.headers, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Content-Security-Policy':
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    });
  });
});
