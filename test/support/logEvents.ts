/**
 * The structured log events the code writes, found with the TypeScript compiler: every call of a Logger's info,
 * warn or error (shared/log/logger.ts) whose event name is a string literal, with the fields of its second argument
 * as the type checker sees them (spreads, conditional spreads and nested objects included) and, where the type or
 * the literal says so, the values a field can take. test/monitoringQueries.test.ts holds the queries against this.
 */
import { join, relative } from 'node:path';
import ts from 'typescript';

/** A field of an event: the string values it can take (undefined: any string, or not a string), nested fields. */
export interface LogField {
  values: Set<string> | undefined;
  nested: Map<string, LogField>;
}

export interface LogEvent {
  name: string;
  fields: Map<string, LogField>;
  /** `file:line` of every call that writes it. */
  writtenAt: string[];
}

const LOG_METHODS = new Set(['info', 'warn', 'error']);

/** The string values a type allows: literals only; undefined when any string (or a non-string) fits. */
function stringValues(type: ts.Type): Set<string> | undefined {
  const members = type.isUnion() ? type.types : [type];
  const values = new Set<string>();
  for (const member of members) {
    if (member.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)) continue;
    if (member.isStringLiteral()) values.add(member.value);
    else return undefined;
  }
  return values;
}

function mergeField(into: Map<string, LogField>, name: string, field: LogField): void {
  const existing = into.get(name);
  if (!existing) {
    into.set(name, field);
    return;
  }
  existing.values = existing.values && field.values ? new Set([...existing.values, ...field.values]) : undefined;
  for (const [nestedName, nested] of field.nested) mergeField(existing.nested, nestedName, nested);
}

/** The properties of an object type, of every member of a union, with their values and nested properties. */
function fieldsOf(checker: ts.TypeChecker, type: ts.Type, at: ts.Node, depth = 0): Map<string, LogField> {
  const fields = new Map<string, LogField>();
  if (depth > 2) return fields;
  const members = type.isUnion() ? type.types : [type];
  for (const member of members) {
    if (!(member.flags & ts.TypeFlags.Object) || checker.isArrayType(member) || checker.isTupleType(member)) continue;
    for (const property of checker.getPropertiesOfType(member)) {
      const propertyType = checker.getTypeOfSymbolAtLocation(property, at);
      // `{ outcome: 'sent' }` widens to string in a Record<string, unknown>: the literal written is the value.
      const declaration = property.valueDeclaration;
      const literal =
        declaration && ts.isPropertyAssignment(declaration) && ts.isStringLiteralLike(declaration.initializer)
          ? new Set([declaration.initializer.text])
          : undefined;
      mergeField(fields, property.getName(), {
        values: literal ?? stringValues(propertyType),
        nested: fieldsOf(checker, checker.getNonNullableType(propertyType), at, depth + 1),
      });
    }
  }
  return fields;
}

/** Whether the call's target is a method of the Logger interface in shared/log/logger.ts. */
function isLoggerCall(checker: ts.TypeChecker, call: ts.CallExpression, loggerFile: string): boolean {
  const callee = call.expression;
  let receiver: ts.Expression;
  if (ts.isPropertyAccessExpression(callee)) {
    if (!LOG_METHODS.has(callee.name.text)) return false;
    receiver = callee.expression;
  } else if (ts.isElementAccessExpression(callee)) {
    receiver = callee.expression; // log[kind === 'deferred' ? 'error' : 'info'](...)
  } else return false;
  const symbol = checker.getTypeAtLocation(receiver).getSymbol();
  return (
    symbol?.getName() === 'Logger' && (symbol.getDeclarations() ?? []).some((d) => d.getSourceFile().fileName === loggerFile)
  );
}

/** Every event written under `dirs` (relative to repo), by name. */
export function logEvents(repo: string, dirs = ['shared', 'functions', 'relay']): Map<string, LogEvent> {
  const configPath = join(repo, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, repo);
  const roots = parsed.fileNames.filter((f) => dirs.some((d) => relative(join(repo, d), f).split(/[\\/]/)[0] !== '..'));
  const program = ts.createProgram(roots, parsed.options);
  const checker = program.getTypeChecker();
  const loggerFile = join(repo, 'shared', 'log', 'logger.ts').split('\\').join('/');

  const rootFiles = new Set(roots.map((f) => f.split('\\').join('/')));
  const events = new Map<string, LogEvent>();
  for (const file of program.getSourceFiles().filter((f) => rootFiles.has(f.fileName))) {
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && node.arguments.length >= 1 && ts.isStringLiteralLike(node.arguments[0]!)) {
        if (isLoggerCall(checker, node, loggerFile)) {
          const name = (node.arguments[0] as ts.StringLiteralLike).text;
          const fieldsArgument = node.arguments[1];
          const fields = fieldsArgument
            ? fieldsOf(checker, checker.getTypeAtLocation(fieldsArgument), fieldsArgument)
            : new Map<string, LogField>();
          const { line } = file.getLineAndCharacterOfPosition(node.getStart());
          const event: LogEvent = events.get(name) ?? { name, fields: new Map(), writtenAt: [] };
          for (const [fieldName, field] of fields) mergeField(event.fields, fieldName, field);
          event.writtenAt.push(`${relative(repo, file.fileName)}:${line + 1}`);
          events.set(name, event);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return events;
}
