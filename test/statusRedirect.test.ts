/**
 * `/api` and `/api/admin` lead to the status page (functions/statusRedirect.ts). The Functions host refuses a route
 * template that starts with "admin"; a parameter that only `admin` satisfies is allowed, and in Azure (which tries
 * routes in the order of the functions' names) the regex keeps it off every other path. `/` stays the host's page.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { HttpResponseInit } from '@azure/functions';
import { HttpRequest, InvocationContext } from './support/azureFunctions';
import {
  assertRegistrable,
  loadFunctionDefinitions,
  type FunctionDefinition,
  type HttpFunctionDefinition,
} from '../local/host/functionRegistry';
import { readHostJson, routePrefix } from '../local/host/hostSettings';
import { RouteTable } from '../local/host/httpRoutes';
import { STATUS_PAGE_PATH } from '../shared/web/routes';

// The function files register as they are imported: the registry has to record them first (no static import).
let definitions: FunctionDefinition[];
let redirect: HttpFunctionDefinition;
before(async () => {
  definitions = await loadFunctionDefinitions();
  redirect = definitions.find((d) => d.name === 'statusRedirect') as HttpFunctionDefinition;
});

function statusRedirect(req: InstanceType<typeof HttpRequest>): HttpResponseInit {
  return redirect.handler(req, new InvocationContext()) as HttpResponseInit;
}

function request(path: string, params: Record<string, string> = {}): InstanceType<typeof HttpRequest> {
  return new HttpRequest({ method: 'GET', url: `https://func.example.net${path}`, params });
}

describe('the status redirect', () => {
  test('sends /api/admin and /api to the status page, with the function key they came with', () => {
    const withKey = statusRedirect(request('/api/admin?code=abc-DEF_123==', { page: 'admin' }));
    assert.equal(withKey.status, 302);
    assert.equal((withKey.headers as Record<string, string>).Location, `${STATUS_PAGE_PATH}?code=abc-DEF_123%3D%3D`);
    const root = statusRedirect(request('/api'));
    assert.equal((root.headers as Record<string, string>).Location, STATUS_PAGE_PATH);
    assert.equal(statusRedirect(request('/api/Admin', { page: 'Admin' })).status, 302, 'routes match case-insensitively');
    // Anything that does not look like a key is dropped, not reflected into the Location.
    const odd = statusRedirect(request('/api/admin?code=%0d%0aSet-Cookie:x', { page: 'admin' }));
    assert.equal((odd.headers as Record<string, string>).Location, STATUS_PAGE_PATH);
  });

  test('answers 404 for any other word (the local runner does not evaluate the regex)', () => {
    assert.equal(statusRedirect(request('/api/other', { page: 'other' })).status, 404);
    assert.equal(statusRedirect(request('/api/administrator', { page: 'administrator' })).status, 404);
  });

  test('is registered with a route the host accepts, behind the function key, and leaves the other routes alone', () => {
    assert.ok(redirect, 'functions/index.ts imports it');
    // Only the word admin, or nothing: ASP.NET route constraints, evaluated by the host in Azure.
    assert.equal(redirect.route, '{page:regex(^admin$)?}');
    assert.equal(redirect.authLevel, 'function');
    assert.deepEqual(redirect.methods, ['GET']);
    assert.doesNotThrow(() => assertRegistrable(redirect, []), "not in the host's reserved route space");

    const http = definitions.filter((d): d is HttpFunctionDefinition => d.kind === 'http');
    const table = new RouteTable(
      http.map((d) => ({ template: d.route, methods: d.methods, target: d.name })),
      routePrefix(readHostJson()),
    );
    const target = (path: string) => {
      const match = table.match('GET', path);
      return match.found?.target;
    };
    assert.equal(target('/api/admin'), 'statusRedirect');
    assert.equal(target('/api'), 'statusRedirect');
    assert.equal(target('/api/status'), 'admin');
    assert.equal(target('/api/health'), 'health');
    assert.equal(target('/'), undefined, '/ is not a function route: in Azure the host answers it');
  });
});
