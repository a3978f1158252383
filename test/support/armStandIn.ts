/**
 * Stand-ins for what the post-provision hook talks to when it removes role assignments
 * (infra/hooks/removeStaleRoleAssignments.mjs): an `azd` on PATH that prints a token as `azd auth token --output
 * json` does, and a loopback Azure Resource Manager that lists role assignments of a resource group (in pages, with
 * nextLink) and deletes them, recording every request.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface RoleAssignmentRow {
  id: string;
  name: string;
  properties: {
    roleDefinitionId: string;
    principalId: string;
    principalType?: string;
    scope: string;
    description?: string | null;
  };
}

export interface ArmRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
}

export interface ArmStandIn {
  /** Resource Manager's base URL, as the template's output AZURE_RESOURCE_MANAGER_ENDPOINT gives it. */
  url: string;
  /** PATH for the hook: the stand-in azd first. */
  path: string;
  token: string;
  requests: ArmRequest[];
  /** The assignments that still exist. */
  assignments: RoleAssignmentRow[];
  /** The arguments of every `azd` call. */
  azdCalls(): string[][];
  close(): Promise<void>;
}

export const SUBSCRIPTION = '00000000-0000-0000-0000-0000000000aa';

export function resourceGroupId(name = 'rg-dev'): string {
  return `/subscriptions/${SUBSCRIPTION}/resourceGroups/${name}`;
}

/** A role assignment row as Resource Manager lists it. */
export function assignment(
  scope: string,
  name: string,
  roleId: string,
  principalId: string,
  description: string | null,
  principalType = 'ServicePrincipal',
): RoleAssignmentRow {
  return {
    id: `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`,
    name,
    properties: {
      roleDefinitionId: `/subscriptions/${SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`,
      principalId,
      principalType,
      scope,
      description,
    },
  };
}

export async function startArmStandIn(
  options: { assignments?: RoleAssignmentRow[]; pageSize?: number; deleteStatus?: number; azdExit?: number } = {},
): Promise<ArmStandIn> {
  const assignments = [...(options.assignments ?? [])];
  const requests: ArmRequest[] = [];
  const token = `token-${Math.random().toString(36).slice(2)}`;
  const pageSize = options.pageSize ?? 100;

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: req.headers.authorization,
    });
    const json = (status: number, body?: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${token}`)
      return json(401, { error: { code: 'InvalidAuthenticationToken', message: 'no or wrong token' } });
    if (req.method === 'GET' && url.pathname.endsWith('/providers/Microsoft.Authorization/roleAssignments')) {
      // Without a filter the API lists what applies at, above and below the scope; the stand-in lists everything.
      const start = Number(url.searchParams.get('$skiptoken') ?? 0);
      const page = assignments.slice(start, start + pageSize);
      const next = new URL(url.href.replace('http://127.0.0.1', address()));
      next.searchParams.set('$skiptoken', String(start + pageSize));
      return json(200, { value: page, ...(start + pageSize < assignments.length ? { nextLink: next.href } : {}) });
    }
    if (req.method === 'DELETE') {
      if (options.deleteStatus && options.deleteStatus >= 400)
        return json(options.deleteStatus, { error: { code: 'AuthorizationFailed', message: 'not allowed to delete' } });
      const index = assignments.findIndex((a) => a.id.toLowerCase() === url.pathname.toLowerCase());
      if (index < 0) return json(204);
      const [removed] = assignments.splice(index, 1);
      return json(200, removed);
    }
    return json(404, { error: { code: 'NotFound', message: `${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const bin = mkdtempSync(join(tmpdir(), 'outbox-azd-'));
  const calls = join(bin, 'calls.jsonl');
  writeFileSync(calls, '');
  const exit = options.azdExit ?? 0;
  const script = `#!/bin/sh
node -e 'require("fs").appendFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)) + "\\n")' '${calls}' "$@"
if [ ${exit} -ne 0 ]; then echo "ERROR: not logged in, run azd auth login" >&2; exit ${exit}; fi
echo '{"token":"${token}","expiresOn":"2099-01-01T00:00:00Z"}'
`;
  writeFileSync(join(bin, 'azd'), script);
  chmodSync(join(bin, 'azd'), 0o755);

  return {
    url: `${address()}/`,
    path: `${bin}${delimiter}${process.env.PATH ?? ''}`,
    token,
    requests,
    assignments,
    azdCalls: () =>
      readFileSync(calls, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as string[]),
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(bin, { recursive: true, force: true });
    },
  };
}

export interface ProcessResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program without blocking the event loop (the stand-in Resource Manager answers in this process). */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<ProcessResult> {
  return new Promise((resolve) => {
    execFile(command, args, { env, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      const status = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}
