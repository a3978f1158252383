/**
 * What azd does with this project, reproduced from its source (Azure/azure-dev, cli/azd/pkg/project at the release
 * tags 1.23.5 to 1.23.13 and later), so that a test can check the package azd would upload without azd:
 *
 * - framework_service_node.go (npm before 1.23.7): `npm install`, then `npm run build`; the package is the service's
 *   `dist` folder (azure.yaml), or the project folder when there is none.
 * - service_target_functionapp.go: for ts/js on Flex Consumption, `.funcignore` in the *project* folder is read to
 *   check remoteBuild: `remoteBuild: false` with node_modules excluded is refused (1.23.12 and later).
 * - project_utils.go createDeployableZip: zips the package folder, reading `.funcignore` from *that* folder; always
 *   leaves out `.azure` folders, the ignore file itself and `local.settings.json`; without an ignore file it leaves
 *   out node_modules unless remoteBuild is false. Before 1.23.13 every file that matched any pattern was dropped,
 *   a `!` (keep) pattern included.
 * - rzip.go: files only (no directory entries), paths with `/`, Deflate.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { crc32 as nodeCrc32, deflateRawSync } from 'node:zlib';

/** A reader for the subset of YAML that azure.yaml uses: nested maps of scalars, two-space indents. */
export function readSimpleYaml(source: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  const stack: { indent: number; map: Record<string, unknown> }[] = [{ indent: -1, map: root }];
  for (const rawLine of source.split(/\r?\n/)) {
    const line = rawLine.replace(/\s+#.*$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const indent = line.length - line.trimStart().length;
    const match = /^([\w.-]+):\s*(.*)$/.exec(line.trim());
    if (!match) throw new Error(`azure.yaml: cannot read line ${JSON.stringify(rawLine)}`);
    while (stack.length > 1 && stack[stack.length - 1]!.indent >= indent) stack.pop();
    const parent = stack[stack.length - 1]!.map;
    const [, key, rest] = match;
    if (rest === '') {
      const child: Record<string, unknown> = {};
      parent[key!] = child;
      stack.push({ indent, map: child });
    } else {
      const unquoted = rest!.replace(/^(['"])(.*)\1$/, '$2');
      parent[key!] = unquoted === 'true' ? true : unquoted === 'false' ? false : unquoted;
    }
  }
  return root;
}

export interface AzdService {
  project?: string;
  language?: string;
  host?: string;
  dist?: string;
  remoteBuild?: boolean;
}

/** The ignore file's patterns, without comments, blank lines and a UTF-8 BOM (azd strips one since 1.23.12). */
export function ignorePatterns(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * Whether an ignore file excludes node_modules at the project root. Enough of gitignore for the patterns a
 * .funcignore holds: a name, a name with a trailing or leading slash, `*` and `**`.
 */
export function excludesNodeModules(patterns: string[]): boolean {
  let excluded = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\//, '').replace(/\/$/, '');
    const regex = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '.*')
        .replace(/(?<!\.)\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')}$`,
    );
    if (regex.test('node_modules')) excluded = !negated;
  }
  return excluded;
}

/** azd's remoteBuild decision for a ts/js function app on Flex Consumption (1.23.12 and later refuse mismatches). */
export function resolveRemoteBuild(projectDir: string, service: AzdService): boolean {
  const patterns = ignorePatterns(join(projectDir, '.funcignore'));
  if (!existsSync(join(projectDir, '.funcignore'))) return service.remoteBuild ?? true;
  const nodeModulesExcluded = excludesNodeModules(patterns);
  if (service.remoteBuild === undefined) return nodeModulesExcluded;
  if (service.remoteBuild && !nodeModulesExcluded)
    throw new Error("'remoteBuild: true' requires '.funcignore' to exclude node_modules");
  if (!service.remoteBuild && nodeModulesExcluded)
    throw new Error("'remoteBuild: false' cannot be used when '.funcignore' excludes node_modules");
  return service.remoteBuild;
}

export interface PackageEntry {
  /** Path inside the zip, with `/`. */
  name: string;
  /** Path on disk. */
  source: string;
}

/**
 * The files createDeployableZip puts in the zip of `packageDir`, for a package folder without its own
 * .funcignore (the function refuses to guess at gitignore semantics that changed between azd versions).
 */
export function azdZipEntries(packageDir: string, remoteBuild: boolean): PackageEntry[] {
  if (existsSync(join(packageDir, '.funcignore')))
    throw new Error(`${packageDir} has its own .funcignore, which azd versions read differently`);
  const entries: PackageEntry[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = join(dir, entry.name);
      const isDir = statSync(full).isDirectory();
      if (isDir && entry.name === '.azure') continue;
      if (!isDir && (entry.name === '.funcignore' || entry.name === 'local.settings.json')) continue;
      if (isDir && entry.name === 'node_modules' && remoteBuild) continue;
      if (isDir) walk(full);
      else entries.push({ name: relative(packageDir, full).split('\\').join('/'), source: full });
    }
  };
  walk(packageDir);
  return entries;
}

// ---------------------------------------------------------------------------------------------------------------
// A zip writer: local headers, Deflate, central directory. Enough to measure what azd uploads.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  if (typeof nodeCrc32 === 'function') return nodeCrc32(data) >>> 0;
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function zip(entries: PackageEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const data = readFileSync(entry.source);
    const compressed = deflateRawSync(data, { level: 6 });
    const name = Buffer.from(entry.name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // Deflate
    local.writeUInt32LE(0, 10); // time and date
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(0, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, compressed);
    centrals.push(central, name);
    offset += local.length + name.length + compressed.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** The entry names of a zip written by `zip`, read back from its central directory. */
export function unzipNames(archive: Buffer): string[] {
  const end = archive.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = archive.readUInt16LE(end + 10);
  let at = archive.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const nameLength = archive.readUInt16LE(at + 28);
    const extra = archive.readUInt16LE(at + 30);
    const comment = archive.readUInt16LE(at + 32);
    names.push(archive.toString('utf8', at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extra + comment;
  }
  return names;
}
