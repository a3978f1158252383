/**
 * The workbook and the alert rules (infra/app/operations.bicep) read the app's structured logs with the queries in
 * infra/app/queries/*.kql. A query that names an event or a field the code does not write returns nothing, and a
 * picture or an alert goes quiet without anyone noticing. So every event name, every field (`e.<field>`) and every
 * value a query compares a field with is checked here against what the code writes, as the TypeScript compiler sees
 * the log calls (test/support/logEvents.ts), and every query against the Bicep that uses it.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { QUEUES } from '../shared/names';
import { find, literal, readBicep, type BicepFile } from './support/bicep';
import { logEvents, type LogEvent, type LogField } from './support/logEvents';

const repo = join(import.meta.dirname, '..');
const queriesDir = join(repo, 'infra/app/queries');

/**
 * Queries that read what the platform writes rather than an event of the code, with the text they rely on and where
 * it comes from. The code writes no event when a message goes to the poison queue: the Functions host does, with
 * "Message has reached MaxDequeueCount of {n}. Moving message to queue '{poison queue}'." (Azure WebJobs
 * storage queues extension, QueueProcessor.CopyMessageToPoisonQueueAsync).
 */
/** Queries that also read a line the platform writes (besides the app's events, if any). */
const PLATFORM_QUERIES: Record<string, string> = {
  'poison-queue.kql': `Moving message to queue '${QUEUES.poison}'`,
};

interface Query {
  file: string;
  text: string;
  events: string[];
  /** `"event":"mail.` in `message contains '"event":"mail.'`: the prefix a line must have to be read at all. */
  prefilters: string[];
  /** `e.messages.refused` → ['messages', 'refused']. */
  fields: string[][];
  /** `tostring(e.outcome) in ('a', 'b')` → outcome: a, b. */
  comparisons: { field: string; values: string[] }[];
}

function readQuery(file: string): Query {
  const raw = readFileSync(join(queriesDir, file), 'utf8');
  const text = raw
    .split('\n')
    .filter((line) => !line.trim().startsWith('//'))
    .join('\n');
  const literals = [...text.matchAll(/'([^']*)'/g)].map((m) => m[1]!);
  return {
    file,
    text,
    events: [...new Set(literals.filter((l) => /^[a-z]+(\.[a-z_]+)+$/.test(l)))],
    prefilters: [...text.matchAll(/contains '"event":"([^"']*)/g)].map((m) => m[1]!),
    fields: [...new Set([...text.matchAll(/\be\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)/g)].map((m) => m[1]!))].map((f) =>
      f.split('.'),
    ),
    comparisons: [...text.matchAll(/tostring\(e\.([\w.]+)\)\s*(?:==|!=|!in|in)\s*(\([^)]*\)|'[^']*')/g)].map((m) => ({
      field: m[1]!,
      values: [...m[2]!.matchAll(/'([^']*)'/g)].map((v) => v[1]!),
    })),
  };
}

const queryFiles = readdirSync(queriesDir).filter((f) => f.endsWith('.kql'));
const queries = queryFiles.map(readQuery);
let events: Map<string, LogEvent>;
let operations: BicepFile;

before(async () => {
  events = logEvents(repo);
  operations = await readBicep(join(repo, 'infra/app/operations.bicep'), repo);
});

/** The field at `path` as the given events write it (one entry per event that has it). */
function fieldIn(event: LogEvent, path: string[]): LogField | undefined {
  let fields = event.fields;
  let field: LogField | undefined;
  for (const name of path) {
    field = fields.get(name);
    if (!field) return undefined;
    fields = field.nested;
  }
  return field;
}

describe('the log events the code writes', () => {
  test('are found: the ones the pictures are built on, with their fields', () => {
    for (const name of [
      'mail.sent',
      'mail.failed',
      'mail.deferred',
      'token.refresh_run',
      'token.refresh_failed',
      'relay.session',
    ])
      assert.ok(events.has(name), `${name} is written (found ${[...events.keys()].join(', ')})`);
    assert.ok(fieldIn(events.get('mail.failed')!, ['errorCode'])?.values?.has('expired'), 'failure codes as a literal union');
    assert.ok(fieldIn(events.get('relay.session')!, ['messages', 'refused']), 'nested fields');
    assert.ok(events.get('relay.message')!.fields.has('reason'), 'fields of a conditional spread');
  });
});

describe('the monitoring queries', () => {
  test('there are queries, each a file the Bicep loads, and the Bicep loads no file that is missing', () => {
    assert.ok(queries.length >= 8, `${queries.length} queries`);
    const loaded = [...operations.source.matchAll(/loadTextContent\('queries\/([^']+)'\)/g)].map((m) => m[1]!);
    assert.deepEqual([...new Set(loaded)].sort(), [...queryFiles].sort(), 'every query is used, every one used exists');
  });

  for (const query of queries) {
    test(`${query.file} names only events, fields and values the code writes`, () => {
      const platformText = PLATFORM_QUERIES[query.file];
      if (platformText) {
        assert.ok(query.text.includes(platformText), `${query.file} looks for "${platformText}"`);
        if (query.events.length === 0) return;
      }
      assert.ok(query.events.length > 0, `${query.file} names at least one event`);
      const written = query.events.map((name) => {
        const event = events.get(name);
        assert.ok(event, `${query.file}: the code writes no event ${name}`);
        return event;
      });

      // The prefilter on the raw line must let every named event through, and each prefilter must match one.
      assert.ok(query.prefilters.length > 0, `${query.file}: filters the lines by event before parsing them`);
      for (const name of query.events)
        assert.ok(
          query.prefilters.some((p) => name.startsWith(p) || `${name}"`.startsWith(p)),
          `${query.file}: ${name} passes none of the prefilters ${query.prefilters.join(', ')}`,
        );
      for (const prefilter of query.prefilters)
        assert.ok(
          query.events.some((name) => `${name}"`.startsWith(prefilter)),
          `${query.file}: the prefilter "${prefilter}" matches none of its events`,
        );
      assert.match(query.text, /extend e = parse_json\(/, `${query.file}: the event is parsed into e`);

      for (const path of query.fields) {
        if (path.join('.') === 'event') continue;
        assert.ok(
          written.some((event) => fieldIn(event, path)),
          `${query.file}: none of ${query.events.join(', ')} writes the field ${path.join('.')}`,
        );
      }
      for (const { field, values } of query.comparisons) {
        if (field === 'event') continue;
        const sets = written.map((event) => fieldIn(event, field.split('.'))).filter((f): f is LogField => !!f);
        if (sets.some((f) => f.values === undefined)) continue; // any string fits
        const possible = new Set(sets.flatMap((f) => [...f.values!]));
        for (const value of values)
          assert.ok(
            possible.has(value),
            `${query.file}: ${field} is never '${value}' (it is one of ${[...possible].join(', ')})`,
          );
      }
    });
  }

  test('every alert rule reads a column its query produces, per account where it splits', () => {
    const rules = literal(find(operations, 'var', 'rules')?.value) as Array<Record<string, unknown>>;
    assert.ok(rules.length >= 3, 'at least three alert rules');
    for (const rule of rules) {
      const query = /queries\/([^']+)'/.exec(String((rule.query as { expression: string }).expression))?.[1];
      const text = queries.find((q) => q.file === query)?.text ?? '';
      assert.match(text, new RegExp(`\\b${String(rule.measure)} = `), `${query}: produces ${String(rule.measure)}`);
      if (rule.dimension)
        assert.match(text, new RegExp(`by ${String(rule.dimension)} = `), `${query}: one row per ${String(rule.dimension)}`);
    }
    assert.deepEqual(
      rules.map((r) => r.name),
      ['needs-reauthorization', 'failures', 'oldest-waiting', 'poison-queue'],
    );
  });
});
