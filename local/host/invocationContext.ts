/**
 * InvocationContext objects as the Functions host builds them, for handlers run by the local runner.
 * @azure/functions is CommonJS: its classes come from the default export.
 */
import { randomUUID } from 'node:crypto';
import functions from '@azure/functions';
import type { InvocationContext, LogLevel } from '@azure/functions';

export const { InvocationContext: InvocationContextClass, HttpRequest, HttpResponse } = functions;

export type TriggerType = 'httpTrigger' | 'queueTrigger' | 'timerTrigger';

export function invocationContext(
  functionName: string,
  triggerType: TriggerType,
  triggerMetadata?: Record<string, unknown>,
): InvocationContext {
  return new InvocationContextClass({
    invocationId: randomUUID(),
    functionName,
    ...(triggerMetadata ? { triggerMetadata } : {}),
    options: {
      trigger: { type: triggerType, name: triggerType === 'httpTrigger' ? 'request' : 'trigger' },
      extraInputs: [],
      extraOutputs: [],
    },
    logHandler: (level: LogLevel, ...args: unknown[]) => writeFunctionLog(functionName, level, args),
  });
}

function writeFunctionLog(functionName: string, level: LogLevel, args: unknown[]): void {
  const text = args
    .map((arg) => (typeof arg === 'string' ? arg : arg instanceof Error ? (arg.stack ?? arg.message) : JSON.stringify(arg)))
    .join(' ');
  const line = `[${functionName}] ${text}`;
  if (level === 'error' || level === 'critical') console.error(line);
  else if (level === 'warning') console.warn(line);
  else if (level !== 'trace' && level !== 'debug' && level !== 'none') console.log(line);
}
