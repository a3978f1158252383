// @azure/functions is CommonJS; Node's ESM loader does not see its class exports by name, so take them
// from the default export (the app code only imports `app` and types, which do resolve).
import functions from '@azure/functions';

export const { InvocationContext, HttpRequest } = functions;
