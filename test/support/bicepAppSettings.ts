/**
 * The app settings infra/app/api.bicep writes, read with tree-sitter-bicep: the `appsettings` config's properties
 * are a union of named variables (first-deployment values, the current settings, azd's, the connections), each an
 * object literal or a union or condition of them. Used by test/infra.test.ts and test/appSettings.test.ts.
 */
import assert from 'node:assert/strict';
import type { Node } from 'web-tree-sitter';
import { callArguments, callee, find, objectProperties, property, resources, stringValue, type BicepFile } from './bicep';

/** One argument of the union that makes up the app settings: the var it names, and the settings it can hold. */
export interface SettingGroup {
  /** The var's name, or `(literal)` for an object written in place. */
  source: string;
  /** Setting name → the value's expression text, whitespace collapsed. */
  settings: Map<string, string>;
}

const collapse = (node: Node): string => node.text.replace(/\s+/g, ' ');

/** Object literals reachable through unions and conditions, resolving vars of the same file. */
function collect(file: BicepFile, node: Node | undefined, into: Map<string, string>, depth = 0): void {
  if (!node || depth > 8) return;
  if (node.type === 'identifier') {
    const variable = find(file, 'var', node.text);
    if (variable?.value) collect(file, variable.value, into, depth + 1);
    return;
  }
  if (node.type === 'object') {
    for (const [key, value] of objectProperties(node)) into.set(key, collapse(value));
    return;
  }
  if (node.type === 'parenthesized_expression') {
    for (const child of node.namedChildren) if (child) collect(file, child, into, depth + 1);
    return;
  }
  if (node.type === 'ternary_expression') {
    collect(file, node.childForFieldName('consequence') ?? undefined, into, depth + 1);
    collect(file, node.childForFieldName('alternative') ?? undefined, into, depth + 1);
    return;
  }
  if (callee(node) === 'union') for (const argument of callArguments(node)) collect(file, argument, into, depth + 1);
}

/** The groups in union order (a later group's value wins over an earlier one's). */
export function appSettingGroups(api: BicepFile): SettingGroup[] {
  const config = resources(api).find(
    (r) => r.target === 'Microsoft.Web/sites/config' && stringValue(property(r.body, 'name')) === 'appsettings',
  );
  assert.ok(config, `${api.path}: declares the appsettings config of the function app`);
  let value = property(config.body, 'properties');
  if (value?.type === 'identifier') value = find(api, 'var', value.text)?.value;
  const parts = callee(value) === 'union' ? callArguments(value) : value ? [value] : [];
  assert.ok(parts.length > 0, `${api.path}: the app settings are a union of vars or an object literal`);
  return parts.map((part) => {
    const settings = new Map<string, string>();
    collect(api, part, settings);
    return { source: part.type === 'identifier' ? part.text : '(literal)', settings };
  });
}

/** Every setting api.bicep can write, with the value of the group that wins. */
export function appSettingsOf(api: BicepFile): Map<string, string> {
  const merged = new Map<string, string>();
  for (const group of appSettingGroups(api)) for (const [name, value] of group.settings) merged.set(name, value);
  return merged;
}

/** The settings of one named group (a var of api.bicep). */
export function settingGroup(api: BicepFile, source: string): Map<string, string> {
  const group = appSettingGroups(api).find((g) => g.source === source);
  assert.ok(group, `${api.path}: the app settings include the var ${source}`);
  return group.settings;
}
