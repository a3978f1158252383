/**
 * docs/deployment.md against what it describes: its numbered steps are the post-provision hook's (the shell and the
 * PowerShell hook print the same ones), they include the steps the hook cannot do for you (SMTP AUTH for the
 * mailbox, alert receivers), and every shell command has its PowerShell next to it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
const doc = read('docs/deployment.md');

/** The numbered lines a hook prints: `1. Register this redirect URI ...`. */
function hookSteps(file: string): { n: number; text: string }[] {
  return [...read(file).matchAll(/^\s*(?:echo|Write-Output)\s+["'](\d+)\. ([^"']+)/gm)].map((m) => ({
    n: Number(m[1]),
    text: m[2]!,
  }));
}

/** The top-level numbered items of the doc's "Step by step": `1. **Register ...**`. */
function docSteps(): { n: number; title: string; body: string }[] {
  const section = doc.slice(doc.indexOf('## Step by step'), doc.indexOf('\n## ', doc.indexOf('## Step by step') + 1));
  const starts = [...section.matchAll(/^(\d+)\. \*\*([^*]+)\*\*/gm)];
  return starts.map((m, i) => ({
    n: Number(m[1]),
    title: m[2]!,
    body: section.slice(m.index, starts[i + 1]?.index ?? section.length),
  }));
}

test('the numbered steps are the ones the post-provision hook prints, in both its forms', () => {
  const sh = hookSteps('infra/hooks/postprovision.sh');
  const ps1 = hookSteps('infra/hooks/postprovision.ps1');
  assert.deepEqual(
    ps1.map((s) => s.n),
    sh.map((s) => s.n),
    'the shell and the PowerShell hook number alike',
  );
  const steps = docSteps();
  assert.deepEqual(
    steps.map((s) => s.n),
    sh.map((s) => s.n),
    `docs: ${steps.map((s) => `${s.n}. ${s.title}`).join(' | ')}`,
  );
  // Each step is about what the hook's step of that number says.
  const topics = [/redirect URI/i, /client secrets? in Key Vault/i, /function key/i, /Authorize each account/i];
  for (const [i, topic] of topics.entries()) {
    assert.match(sh[i]!.text, topic, `hook step ${i + 1}: ${sh[i]!.text}`);
    assert.match(steps[i]!.title, topic, `doc step ${i + 1}: ${steps[i]!.title}`);
  }
});

test('the steps include allowing SMTP AUTH for the mailbox and the alert receivers', () => {
  const first = docSteps()[0]!.body;
  assert.match(first, /Set-CASMailbox -Identity \S+ -SmtpClientAuthenticationDisabled \$false/);
  assert.match(first, /"alerts":\["it-team@contoso\.com"\]/);
  assert.match(first, /azd env set ALERT_RECIPIENTS/);
});

test('every shell command block has a PowerShell block right after it', () => {
  const blocks = [...doc.matchAll(/^[ \t]*```(\w*)\n([\s\S]*?)^[ \t]*```$/gm)].map((m) => ({
    lang: m[1]!,
    line: doc.slice(0, m.index).split('\n').length,
  }));
  const shell = blocks.filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.lang));
  assert.ok(shell.length >= 8, `shell blocks found: ${shell.length}`);
  for (const block of shell) {
    const next = blocks[blocks.indexOf(block) + 1];
    assert.equal(next?.lang, 'powershell', `the ${block.lang} block at line ${block.line} has no PowerShell after it`);
  }
});
