/**
 * The real Bicep compiler, offline: find the CLI, lay out Bicep's module cache from the compiled Azure Verified
 * Modules kept beside the repository (`../shared/avm`), and run `bicep build` / `bicep lint` with `--no-restore`.
 *
 * Where the CLI comes from, first found wins:
 * - `BICEP_PATH` (an executable);
 * - `.local/tools/bicep/<version>/bicep`, where `.ci/run` installs the NuGet package Azure.Bicep.CommandLine.linux-x64;
 * - `bicep` on PATH;
 * - `~/.azure/bin/bicep`, where `az bicep install` puts it.
 *
 * The module cache (facts from Azure/bicep's source, see ../shared/avm/README.md): `$HOME/.bicep/br/<registry>/
 * <repository with "/" as "$">/<tag>$/` holding `main.json`, `manifest` and `metadata`. `br/public:` is registry
 * mcr.microsoft.com with repository prefix `bicep/`. The CLI runs with HOME set to a temporary folder, so a
 * developer's own cache is neither read nor written.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The version `.ci/run` installs. Older compilers miss diagnostics the templates rely on being reported. */
export const BICEP_VERSION = '0.49.2';
export const MIN_BICEP_VERSION = BICEP_VERSION;

/** Where `.ci/run` puts the CLI (inside .local/, which git, prettier and eslint ignore). */
export const LOCAL_BICEP = join(REPO, '.local', 'tools', 'bicep', BICEP_VERSION, 'bicep');

/** The compiled Azure Verified Modules: `<dir>/avm/res/<provider>/<resource>/<version>/main.json`. */
export function avmDirectory(env: NodeJS.ProcessEnv = process.env): string {
  return env.BICEP_AVM_DIR ? resolve(env.BICEP_AVM_DIR) : resolve(REPO, '..', 'shared', 'avm');
}

export interface BicepCli {
  path: string;
  version: string;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The Bicep CLI's environment: no culture data needed (libicu may be missing), no telemetry, HOME as given. */
export function bicepEnv(home?: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: '1',
    BICEP_TRACING_ENABLED: 'false',
    ...(home ? { HOME: home, USERPROFILE: home } : {}),
  };
}

export function bicepVersion(path: string): string | undefined {
  const run = spawnSync(path, ['--version'], { encoding: 'utf8', env: bicepEnv(), timeout: 60_000 });
  if (run.error || run.status !== 0) return undefined;
  return /version (\d+\.\d+\.\d+)/i.exec(run.stdout)?.[1];
}

export function findBicepCli(env: NodeJS.ProcessEnv = process.env): BicepCli | undefined {
  const candidates = [
    env.BICEP_PATH,
    LOCAL_BICEP,
    ...(env.PATH ?? '').split(delimiter).map((dir) => (dir ? join(dir, 'bicep') : '')),
    join(homedir(), '.azure', 'bin', 'bicep'),
  ].filter((p): p is string => !!p && isFile(p));
  for (const path of candidates) {
    const version = bicepVersion(path);
    if (version) return { path, version };
  }
  return undefined;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Module cache

/** `br/public:avm/res/web/site:0.24.0` → `avm/res/web/site` and `0.24.0`. */
export function parsePublicReference(reference: string): { repository: string; tag: string } | undefined {
  const match = /^br\/public:([a-z0-9._/-]+):([A-Za-z0-9._-]+)$/.exec(reference);
  return match ? { repository: match[1]!, tag: match[2]! } : undefined;
}

/** Every `br/public:` module reference in the given Bicep sources, with the files that use it. */
export function publicReferences(files: Array<{ path: string; source: string }>): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of files) {
    for (const match of file.source.matchAll(/'(br\/public:[^']+)'/g)) {
      const users = found.get(match[1]!) ?? [];
      if (!users.includes(file.path)) users.push(file.path);
      found.set(match[1]!, users);
    }
  }
  return found;
}

/** The compiled modules available in the AVM folder, as `br/public:` references. */
export function cachedReferences(avmDir: string): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name === 'main.json') {
        const parts = relative(avmDir, dirname(full)).split(/[\\/]/);
        const tag = parts.pop()!;
        found.add(`br/public:${parts.join('/')}:${tag}`);
      }
    }
  };
  if (existsSync(avmDir)) walk(avmDir);
  return found;
}

/** Writes Bicep's local module cache under `<home>/.bicep` for the given references, from `avmDir`. */
export function layOutModuleCache(home: string, avmDir: string, references: Iterable<string>): void {
  for (const reference of references) {
    const parsed = parsePublicReference(reference);
    if (!parsed) throw new Error(`not a br/public module reference: ${reference}`);
    const template = readFileSync(join(avmDir, ...parsed.repository.split('/'), parsed.tag, 'main.json'));
    const dir = join(
      home,
      '.bicep',
      'br',
      'mcr.microsoft.com',
      `bicep$${parsed.repository.split('/').join('$')}`,
      `${parsed.tag}$`,
    );
    mkdirSync(dir, { recursive: true });
    const digest = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    // An OCI image manifest as the registry serves it; read offline only for descriptions and links.
    const manifest = JSON.stringify({
      schemaVersion: 2,
      artifactType: 'application/vnd.ms.bicep.module.artifact',
      config: { mediaType: 'application/vnd.ms.bicep.module.config.v1+json', digest: digest('{}'), size: 2 },
      layers: [{ mediaType: 'application/vnd.ms.bicep.module.layer.v1+json', digest: digest(template), size: template.length }],
      annotations: { 'org.opencontainers.image.title': reference },
    });
    writeFileSync(join(dir, 'main.json'), template);
    writeFileSync(join(dir, 'manifest'), manifest);
    writeFileSync(join(dir, 'metadata'), JSON.stringify({ manifestDigest: digest(manifest) }));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Running the CLI

export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  level: 'error' | 'warning' | 'info';
  code: string;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.column}: ${d.level} ${d.code}: ${d.message}`;
}

/** `/abs/infra/main.bicep(12,5) : Warning no-unused-params: Parameter "x" ... [https://aka.ms/...]` */
export function parseTextDiagnostics(output: string, baseDir: string): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const line of output.split(/\r?\n/)) {
    const match = /^(.*)\((\d+),(\d+)\)\s*:\s*(Error|Warning|Info)\s+([^:]+):\s*(.*)$/.exec(line.trim());
    if (!match) continue;
    diagnostics.push({
      file: relative(baseDir, match[1]!).split('\\').join('/'),
      line: Number(match[2]),
      column: Number(match[3]),
      level: match[4]!.toLowerCase() as Diagnostic['level'],
      code: match[5]!.trim(),
      message: match[6]!.replace(/\s*\[https:\/\/aka\.ms\/[^\]]+\]\s*$/, ''),
    });
  }
  return diagnostics;
}

interface SarifLog {
  runs?: Array<{
    results?: Array<{
      ruleId?: string;
      level?: string;
      message?: { text?: string };
      locations?: Array<{
        physicalLocation?: { artifactLocation?: { uri?: string }; region?: { startLine?: number; charOffset?: number } };
      }>;
    }>;
  }>;
}

/** SARIF from `bicep lint --diagnostics-format sarif`; a result without a level is a warning (SARIF's default). */
export function parseSarif(text: string, baseDir: string): Diagnostic[] {
  const log = JSON.parse(text) as SarifLog;
  return (log.runs ?? []).flatMap((run) =>
    (run.results ?? []).map((result) => {
      const location = result.locations?.[0]?.physicalLocation;
      const uri = location?.artifactLocation?.uri ?? '';
      const path = uri.startsWith('file://') ? fileURLToPath(uri) : uri;
      const level = result.level === 'error' ? 'error' : result.level === 'note' || result.level === 'none' ? 'info' : 'warning';
      return {
        file: relative(baseDir, path).split('\\').join('/'),
        line: location?.region?.startLine ?? 0,
        column: location?.region?.charOffset ?? 0,
        level,
        code: result.ruleId ?? '',
        message: (result.message?.text ?? '').replace(/\s*\[https:\/\/aka\.ms\/[^\]]+\]\s*$/, ''),
      } satisfies Diagnostic;
    }),
  );
}

export interface BicepRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runBicep(cli: BicepCli, args: string[], home: string): BicepRun {
  const run = spawnSync(cli.path, args, {
    cwd: REPO,
    encoding: 'utf8',
    env: bicepEnv(home),
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** How to get what the compile test needs, for the notice printed when it is skipped. */
export function howToGetTheCompiler(missing: 'cli' | 'avm'): string {
  if (missing === 'avm')
    return (
      'the compiled Azure Verified Modules are not there: the test reads them from ../shared/avm (the folder ' +
      'shared/avm beside the repository), or from BICEP_AVM_DIR.'
    );
  return (
    `no Bicep CLI found (BICEP_PATH, ${relative(REPO, LOCAL_BICEP)}, bicep on PATH, ~/.azure/bin/bicep). ` +
    'Get one with `az bicep install`, from https://github.com/Azure/bicep/releases, or as .ci/run does: ' +
    `dotnet package download Azure.Bicep.CommandLine.linux-x64@${BICEP_VERSION} (tools/bicep in the package).`
  );
}
