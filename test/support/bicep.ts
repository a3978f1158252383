/**
 * Reading Bicep files without the Bicep CLI: tree-sitter-bicep's WASM grammar through web-tree-sitter, to find
 * declarations and their values for the consistency tests (test/infra.test.ts). Syntax, types and resource schemas
 * are the compiler's: test/bicepCompile.test.ts runs `bicep build` and `bicep lint`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { Language, Parser, type Node, type Tree } from 'web-tree-sitter';

let parserPromise: Promise<Parser> | undefined;

/** One parser for the whole process; web-tree-sitter's WASM runtime is initialised once. */
export function bicepParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    await Parser.init();
    const require = createRequire(import.meta.url);
    const language = await Language.load(require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm'));
    const parser = new Parser();
    parser.setLanguage(language);
    return parser;
  })();
  return parserPromise;
}

export interface BicepFile {
  /** Path relative to the directory it was listed from, with forward slashes. */
  path: string;
  source: string;
  tree: Tree;
  root: Node;
}

export async function parseBicep(source: string, path = '<inline>'): Promise<BicepFile> {
  const parser = await bicepParser();
  const tree = parser.parse(source);
  if (!tree) throw new Error(`${path}: the parser returned no tree`);
  return { path, source, tree, root: tree.rootNode };
}

export async function readBicep(file: string, baseDir: string): Promise<BicepFile> {
  return parseBicep(readFileSync(file, 'utf8'), relative(baseDir, file).split('\\').join('/'));
}

/** Every *.bicep file under dir, sorted. */
export function listBicepFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.bicep')) found.push(full);
    }
  };
  walk(dir);
  return found.sort();
}

// ---------------------------------------------------------------------------------------------------------------
// Declarations

export interface Declaration {
  kind: 'param' | 'var' | 'output' | 'resource' | 'module';
  name: string;
  node: Node;
  /** The text of the decorators right above the declaration. */
  decorators: string[];
  /** param and output: the declared type as written. */
  type?: string;
  /** param: default value; var and output: value; resource and module: the body (object, loop or condition). */
  value?: Node;
}

export interface ResourceDeclaration extends Declaration {
  /** resource: 'Microsoft.Storage/storageAccounts'; module: the path or registry reference. */
  target: string;
  apiVersion?: string;
  existing: boolean;
  /** The object that describes the resource or module, inside a loop and a condition if any. */
  body?: Node;
  loop?: { variable: string; source: Node };
  condition?: Node;
}

export function declarations(file: BicepFile): Declaration[] {
  const result: Declaration[] = [];
  let pendingDecorators: string[] = [];
  for (const node of file.root.namedChildren) {
    if (!node || node.type === 'comment' || node.type === 'diagnostic_comment') continue;
    if (node.type === 'decorators') {
      pendingDecorators = node.namedChildren.filter((d) => d !== null).map((d) => d.text);
      continue;
    }
    const decl = toDeclaration(node, pendingDecorators);
    pendingDecorators = [];
    if (decl) result.push(decl);
  }
  return result;
}

function toDeclaration(node: Node, decorators: string[]): Declaration | undefined {
  const named = node.namedChildren.filter((c): c is Node => c !== null);
  const identifier = named.find((c) => c.type === 'identifier');
  if (!identifier) return undefined;
  const name = identifier.text;
  const afterEquals = valueAfterEquals(node);
  switch (node.type) {
    case 'parameter_declaration':
      return { kind: 'param', name, node, decorators, type: named.find((c) => c.type === 'type')?.text, value: afterEquals };
    case 'variable_declaration':
      return { kind: 'var', name, node, decorators, value: afterEquals };
    case 'output_declaration':
      return { kind: 'output', name, node, decorators, type: named.find((c) => c.type === 'type')?.text, value: afterEquals };
    case 'resource_declaration':
    case 'module_declaration': {
      const targetNode = named.find((c) => c.type === 'string');
      const raw = targetNode ? (stringValue(targetNode) ?? targetNode.text) : '';
      const isResource = node.type === 'resource_declaration';
      const [target, apiVersion] = isResource ? splitType(raw) : [raw, undefined];
      const decl: ResourceDeclaration = {
        kind: isResource ? 'resource' : 'module',
        name,
        node,
        decorators,
        value: afterEquals,
        target,
        apiVersion,
        existing: node.children.some((c) => c?.type === 'existing'),
      };
      unwrapBody(decl);
      return decl;
    }
    default:
      return undefined;
  }
}

function splitType(raw: string): [string, string | undefined] {
  const at = raw.lastIndexOf('@');
  return at < 0 ? [raw, undefined] : [raw.slice(0, at), raw.slice(at + 1)];
}

function valueAfterEquals(node: Node): Node | undefined {
  let seenEquals = false;
  for (const child of node.children) {
    if (!child) continue;
    if (seenEquals && child.isNamed) return child;
    if (child.type === '=') seenEquals = true;
  }
  return undefined;
}

function unwrapBody(decl: ResourceDeclaration): void {
  let current = decl.value;
  if (current?.type === 'for_statement') {
    const named = current.namedChildren.filter((c): c is Node => c !== null);
    // [for x in source: body] or [for (x, i) in source: body]
    const inIndex = current.children.findIndex((c) => c?.type === 'in');
    const variableNode = named.find((c) => c.type === 'identifier' || c.type === 'for_loop_parameters');
    const source = current.children.slice(inIndex + 1).find((c): c is Node => c !== null && c.isNamed);
    const body = named[named.length - 1];
    if (variableNode && source) {
      const variable = variableNode.type === 'identifier' ? variableNode.text : (variableNode.namedChildren[0]?.text ?? '');
      decl.loop = { variable, source };
    }
    current = body;
  }
  if (current?.type === 'if_statement') {
    const named = current.namedChildren.filter((c): c is Node => c !== null);
    decl.condition = named.find((c) => c.type === 'parenthesized_expression');
    current = named[named.length - 1];
  }
  if (current?.type === 'object') decl.body = current;
}

export function resources(file: BicepFile): ResourceDeclaration[] {
  return declarations(file).filter((d): d is ResourceDeclaration => d.kind === 'resource' || d.kind === 'module');
}

export function find<K extends Declaration['kind']>(file: BicepFile, kind: K, name: string): Declaration | undefined {
  return declarations(file).find((d) => d.kind === kind && d.name === name);
}

// ---------------------------------------------------------------------------------------------------------------
// Expressions

/** The properties of an object literal, in order, keyed by their (unquoted) names. */
export function objectProperties(object: Node | undefined): Map<string, Node> {
  const properties = new Map<string, Node>();
  if (object?.type !== 'object') return properties;
  for (const property of object.namedChildren) {
    if (property?.type !== 'object_property') continue;
    const key = property.namedChildren[0];
    const value = property.namedChildren[property.namedChildren.length - 1];
    if (!key || !value || key === value) continue;
    const name = key.type === 'string' ? stringValue(key) : key.text;
    if (name !== undefined) properties.set(name, value);
  }
  return properties;
}

/** Follows a dotted path of property names through nested object literals. */
export function property(object: Node | undefined, path: string): Node | undefined {
  let current = object;
  for (const key of path.split('.')) {
    current = objectProperties(current).get(key);
    if (!current) return undefined;
  }
  return current;
}

/** The value of a string literal without interpolation; undefined otherwise. */
export function stringValue(node: Node | undefined): string | undefined {
  if (node?.type !== 'string') return undefined;
  let value = '';
  for (const child of node.namedChildren) {
    if (!child) continue;
    if (child.type === 'string_content') value += child.text;
    else if (child.type === 'escape_sequence') value += unescape(child.text);
    else return undefined; // interpolation
  }
  return value;
}

function unescape(sequence: string): string {
  switch (sequence) {
    case "\\'":
      return "'";
    case '\\\\':
      return '\\';
    case '\\n':
      return '\n';
    case '\\r':
      return '\r';
    case '\\t':
      return '\t';
    case '\\$':
      return '$';
    default: {
      const unicode = /^\\u\{([0-9a-fA-F]+)\}$/.exec(sequence);
      return unicode ? String.fromCodePoint(parseInt(unicode[1]!, 16)) : sequence;
    }
  }
}

/** Marker for an expression that is not a literal. */
export interface Expression {
  expression: string;
}

export type Literal = string | number | boolean | null | Literal[] | { [key: string]: Literal } | Expression;

/** Converts literals (strings, numbers, booleans, null, arrays, objects) to values; anything else to { expression }. */
export function literal(node: Node | undefined): Literal | undefined {
  if (!node) return undefined;
  switch (node.type) {
    case 'string': {
      const value = stringValue(node);
      return value ?? { expression: node.text };
    }
    case 'number':
      return Number(node.text);
    case 'boolean':
    case 'true':
    case 'false':
      return node.text === 'true';
    case 'null':
      return null;
    case 'array':
      return node.namedChildren.filter((c): c is Node => c !== null && c.type !== 'comment').map((c) => literal(c) ?? null);
    case 'object': {
      const result: Record<string, Literal> = {};
      for (const [key, value] of objectProperties(node)) result[key] = literal(value) ?? null;
      return result;
    }
    default:
      return { expression: node.text };
  }
}

export function isExpression(value: Literal | undefined): value is Expression {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    'expression' in value &&
    Object.keys(value).length === 1
  );
}

/** Resolves an identifier that names a `var` of the same file to that var's value node. */
export function resolveVariable(file: BicepFile, node: Node | undefined): Node | undefined {
  if (node?.type !== 'identifier') return node;
  const variable = find(file, 'var', node.text);
  return variable?.value ?? node;
}

/** Every descendant (and the node itself) of the given types. */
export function descendants(node: Node | undefined, types: string | string[]): Node[] {
  if (!node) return [];
  const wanted = new Set(Array.isArray(types) ? types : [types]);
  const found: Node[] = [];
  const visit = (current: Node): void => {
    if (wanted.has(current.type)) found.push(current);
    for (const child of current.namedChildren) if (child) visit(child);
  };
  visit(node);
  return found;
}

/** The name of a called function when node is a call expression (`union(...)` gives 'union'). */
export function callee(node: Node | undefined): string | undefined {
  if (node?.type !== 'call_expression') return undefined;
  return node.namedChildren[0]?.text;
}

/** The argument nodes of a call expression. */
export function callArguments(node: Node | undefined): Node[] {
  if (node?.type !== 'call_expression') return [];
  const args = node.namedChildren.find((c) => c?.type === 'arguments');
  return args ? args.namedChildren.filter((c): c is Node => c !== null && c.type !== 'comment') : [];
}
