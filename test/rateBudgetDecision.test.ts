import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ticketOf } from '../shared/delivery/sendAttempt';
import { decideGrants, type BudgetCaller, type BudgetRow } from '../shared/limits/rateBudget';
import type { OutcomeCode } from '../shared/outcomeCodes';
import type { DeliveryRecord } from '../shared/storage/deliveryLedger';

/** decideGrants is the budget's whole decision, without storage: who gets budget, who waits, who gets a place. */
const NOW = 1_800_000_000_000;
const LIMITS = { perWindow: 2, windowMs: 60_000 };
const TUNING = { bucketMs: 600, guardMs: 600, slotMs: 30_600 };
const empty: BudgetRow = { buckets: [], dayBuckets: [], line: 0 };
const caller = (name: string, ticket?: BudgetCaller['ticket'], waitMs = 0) => ({
  name,
  recipients: 1,
  deadline: NOW + waitMs,
  ticket,
});

describe('decideGrants', () => {
  test('grants up to the window, and counts the grants in the row to write', () => {
    const d = decideGrants(empty, [caller('a'), caller('b'), caller('c')], LIMITS, NOW, TUNING);
    assert.deepEqual(
      d.granted.map((w) => w.name),
      ['a', 'b'],
    );
    assert.deepEqual(JSON.parse(d.next!.buckets), [[NOW, 2]]);
    assert.equal(d.refused.length, 1);
    assert.equal(d.refused[0]!.grant.reservedAt, undefined, 'no ticket: no place in the line');
  });

  test('callers with a ticket that must wait get places one slot apart, behind the last one', () => {
    const row: BudgetRow = { buckets: [[NOW - 1_000, 2]], dayBuckets: [], line: 0 };
    const d = decideGrants(row, [caller('a', { known: true }), caller('b', { known: true })], LIMITS, NOW, TUNING);
    assert.equal(d.granted.length, 0);
    const places = d.refused.map((r) => r.grant.reservedAt!);
    assert.equal(places[1]! - places[0]!, TUNING.slotMs);
    assert.equal(d.next!.line, places[1]);
  });

  test('while others hold places, a newcomer with a ticket queues behind them even if the window has room', () => {
    const row: BudgetRow = { buckets: [], dayBuckets: [], line: NOW + 45_000 };
    const d = decideGrants(row, [caller('newcomer', { known: true })], LIMITS, NOW, TUNING);
    assert.equal(d.granted.length, 0);
    assert.equal(d.refused[0]!.grant.reservedAt, NOW + 45_000 + TUNING.slotMs);
  });

  test('a caller whose place has come goes before every newcomer', () => {
    const row: BudgetRow = { buckets: [[NOW - 1_000, 1]], dayBuckets: [], line: NOW + 45_000 };
    const d = decideGrants(
      row,
      [caller('newcomer', { known: true }), caller('holder', { known: true, reservedAt: NOW - 500 })],
      LIMITS,
      NOW,
      TUNING,
    );
    assert.deepEqual(
      d.granted.map((w) => w.name),
      ['holder'],
    );
    assert.equal(d.refused[0]!.waiter.name, 'newcomer');
  });

  test('a caller that has not read its ticket is asked for it, not given a place', () => {
    const row: BudgetRow = { buckets: [], dayBuckets: [], line: NOW + 45_000 };
    const d = decideGrants(row, [caller('unknown', { known: false })], LIMITS, NOW, TUNING);
    assert.equal(d.refused[0]!.grant.needsTicket, true);
    assert.equal(d.next, undefined, 'nothing to write');
  });

  test('the daily recipient budget refuses a caller that would exceed it, whatever the window', () => {
    const row: BudgetRow = { buckets: [], dayBuckets: [[NOW - 3_600_000, 99]], line: 0 };
    const d = decideGrants(row, [{ ...caller('big'), recipients: 2 }], { ...LIMITS, recipientsPerDay: 100 }, NOW, TUNING);
    assert.equal(d.granted.length, 0);
    assert.match(d.refused[0]!.grant.reason, /100 recipients per 24 hours/);
  });

  test('a caller that may wait in-process for the window stays', () => {
    const row: BudgetRow = { buckets: [[NOW - 59_000, 2]], dayBuckets: [], line: 0 };
    const d = decideGrants(row, [caller('patient', undefined, 10_000)], LIMITS, NOW, TUNING);
    assert.deepEqual(
      d.stay.map((w) => w.name),
      ['patient'],
    );
    assert.ok(d.waitMs > 0 && d.waitMs <= 10_000);
  });
});

describe('a place in the line survives every passing deferral', () => {
  const row = (code: OutcomeCode): DeliveryRecord => ({
    id: 'm',
    status: 'deferred',
    attempts: 0,
    deferrals: 2,
    firstSeenAt: new Date(NOW).toISOString(),
    updatedAt: new Date(NOW).toISOString(),
    code,
    lineSlot: new Date(NOW + 30_000).toISOString(),
  });
  for (const code of ['rate_limited', 'connection_limit', 'in_progress', 'not_authorized', 'transient'] as const) {
    test(`a message deferred for ${code} after it got a place still presents it`, () => {
      const ticket = ticketOf({ existing: row(code), draft: { id: 'm', attempts: 0, deferrals: 2, firstSeenAt: '' } });
      assert.deepEqual(ticket, { known: true, reservedAt: NOW + 30_000 });
    });
  }
});
