/**
 * Where a V8 CPU profile's time went: self time per package (node_modules), per project file, and per function,
 * as shares of the busy (non-idle) time. `node --import tsx test/bench/profileSummary.ts <file.cpuprofile>...`
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  busyMs: number;
  byGroup: Array<[string, number]>;
  byPackage: Array<[string, number]>;
  byFunction: Array<[string, number]>;
}

export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const packages = new Map<string, number>();
  const groups = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    busy += us;
    const where = locate(frame.url, frame.functionName);
    packages.set(where, (packages.get(where) ?? 0) + us);
    const group = groupOf(where);
    groups.set(group, (groups.get(group) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const sorted = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, v / 1000] as [string, number]);
  return {
    file,
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busy / 1000,
    byGroup: sorted(groups),
    byPackage: sorted(packages),
    byFunction: sorted(functions),
  };
}

export function formatSummary(summary: ProfileSummary, label: string): string[] {
  const pct = (ms: number) => `${((ms / summary.busyMs) * 100).toFixed(1).padStart(5)}%`;
  return [
    `${label}: busy ${Math.round(summary.busyMs)} ms of ${Math.round(summary.wallMs)} ms (${summary.file})`,
    '  self time by group:',
    ...summary.byGroup.map(([name, ms]) => `    ${pct(ms)}  ${name}`),
    '  self time by package / file:',
    ...summary.byPackage.map(([name, ms]) => `    ${pct(ms)}  ${name}`),
    '  hottest functions (self):',
    ...summary.byFunction.map(([name, ms]) => `    ${pct(ms)}  ${name}`),
  ];
}

function groupOf(where: string): string {
  if (/^(shared|functions)\//.test(where)) return 'app code (shared/, functions/)';
  if (/^(test|local)\//.test(where)) return 'bench and test support';
  if (/^@azure\/|^@typespec\/|^fast-xml-parser|^strnum|^tslib|^events$/.test(where)) return 'Azure SDK';
  if (where.startsWith('node core') || where.startsWith('(')) return 'node core, V8 builtins, GC';
  return where;
}

function locate(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native / V8 builtins)';
  if (url.startsWith('node:')) return `node core: ${url.slice(5).split('/')[0]}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return shortUrl(url);
}

function shortUrl(url: string): string {
  const match = /\/((?:shared|functions|local|test)\/.*)$/.exec(url);
  if (match) return match[1]!;
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  return url.replace(/^file:\/\//, '');
}

if (process.argv[1]?.endsWith('profileSummary.ts') && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of process.argv.slice(2)) console.log(formatSummary(summarizeProfile(file), file).join('\n'));
}
