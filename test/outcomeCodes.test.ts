import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { OUTCOME_CODES } from '../shared/outcomeCodes';

test("README's table of outcome codes lists exactly the codes of OUTCOME_CODES, each under its status", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Outcome codes'));
  const table = section.slice(0, section.indexOf('\n## '));
  const documented = new Map<string, string>();
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const status = cells[1];
    if (!status || !['sent', 'failed', 'deferred'].includes(status)) continue;
    for (const [, code] of cells[2]!.matchAll(/`([a-z_]+)`/g)) documented.set(code!, status);
  }
  const expected = new Map(Object.entries(OUTCOME_CODES).map(([code, { status }]) => [code, status]));
  assert.deepEqual([...documented].sort(), [...expected].sort());
});
