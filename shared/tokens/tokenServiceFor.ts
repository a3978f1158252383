import { INSTANCE_ID } from '../instanceId';
import { service, type Runtime } from '../runtime';
import { ProviderTokenRefresher } from './tokenRefresher';
import { TokenService } from './tokenService';

/** The process-wide token service of a runtime (its memory cache is what makes steady sending read no secret). */
export function tokenServiceFor(runtime: Runtime): TokenService {
  return service(runtime, 'tokens', () => new TokenService(runtime.tokenStore, refresherFor(runtime)));
}

export function refresherFor(runtime: Runtime): ProviderTokenRefresher {
  return service(runtime, 'refresher', () => new ProviderTokenRefresher(runtime, INSTANCE_ID));
}
