/**
 * Route templates as the Functions host matches them (ASP.NET style): literal segments compare
 * case-insensitively; `{id}` takes one segment, `{id?}` may be absent, `{id:int}` / `{id:alpha}` / `{id:guid}`
 * constrain it, `{*rest}` takes the remainder. Routes with more literal segments win, as in ASP.NET.
 */
import type { HttpMethod } from '@azure/functions';

export interface RouteTemplate<T> {
  /** Template as registered, without prefix, e.g. `accounts/{id}/authorize`. */
  template: string;
  methods: readonly HttpMethod[];
  target: T;
}

export interface RouteMatch<T> {
  target: T;
  params: Record<string, string>;
}

interface CompiledRoute<T> extends RouteTemplate<T> {
  pattern: RegExp;
  names: string[];
  /** Sort key: literal segments first, then parameters, catch-all last. */
  rank: number;
}

const CONSTRAINTS: Record<string, string> = {
  int: '-?\\d+',
  long: '-?\\d+',
  alpha: '[A-Za-z]+',
  bool: '(?:true|false)',
  guid: '[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}',
};

export class RouteTable<T> {
  private readonly routes: CompiledRoute<T>[];

  constructor(routes: readonly RouteTemplate<T>[], prefix: string) {
    this.routes = routes.map((route) => compile(route, prefix)).sort((a, b) => b.rank - a.rank);
  }

  /** `pathname` is the raw (still percent-encoded) path. `pathMatched`: a route has this path, but not this method. */
  match(method: string, pathname: string): { found: RouteMatch<T> } | { found: undefined; pathMatched: boolean } {
    let pathMatched = false;
    for (const route of this.routes) {
      const match = route.pattern.exec(pathname);
      if (!match) continue;
      pathMatched = true;
      if (!route.methods.includes(method.toUpperCase() as HttpMethod)) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, index) => {
        const value = match[index + 1];
        if (value !== undefined && value !== '') params[name] = safeDecode(value);
      });
      return { found: { target: route.target, params } };
    }
    return { found: undefined, pathMatched };
  }
}

function compile<T>(route: RouteTemplate<T>, prefix: string): CompiledRoute<T> {
  const segments = [...prefix.split('/'), ...route.template.split('/')].filter((s) => s !== '');
  const names: string[] = [];
  let source = '';
  let rank = 0;
  for (const segment of segments) {
    const param = /^\{(\*?)([A-Za-z_][\w]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?(?:=[^}]*)?\}$/.exec(segment);
    if (!param) {
      if (segment.includes('{'))
        throw new Error(
          `Route "${route.template}": segment "${segment}" mixes text and parameters, which the local runner does not support.`,
        );
      source += `/${escapeRegExp(segment)}`;
      rank += 3;
      continue;
    }
    const [, catchAll, name = '', constraint, optional] = param;
    names.push(name);
    if (catchAll) {
      source += '(?:/(.*))?';
      continue;
    }
    const body = constraint ? (CONSTRAINTS[constraint.toLowerCase()] ?? '[^/]+') : '[^/]+';
    source += optional ? `(?:/(${body}))?` : `/(${body})`;
    rank += constraint ? 2 : 1;
  }
  return { ...route, pattern: new RegExp(`^${source}/?$`, 'i'), names, rank };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
