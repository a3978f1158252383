/** Who may sign in, and which resource servers the requested scopes name. */
import type { IdentityProviderUser } from './types';

export class Users {
  readonly #byId = new Map<string, IdentityProviderUser>();
  readonly #byLogin = new Map<string, IdentityProviderUser>();

  constructor(users: IdentityProviderUser[]) {
    for (const user of users) {
      this.#byId.set(user.id, user);
      this.#byLogin.set(user.email.toLowerCase(), user);
      this.#byLogin.set(user.id.toLowerCase(), user);
    }
  }

  byId(id: string): IdentityProviderUser | undefined {
    return this.#byId.get(id);
  }

  authenticate(login: string, password: string): IdentityProviderUser | undefined {
    const user = this.#byLogin.get(login.trim().toLowerCase());
    return user && user.password === password ? user : undefined;
  }
}

/**
 * Resource servers are discovered from URL-shaped scopes rather than configured: the
 * scope's origin is the resource and every such scope seen for it is one of its scopes.
 */
export class ResourceRegistry {
  readonly #scopes = new Map<string, Set<string>>();

  /** Records the URL-shaped scopes of a scope string; returns their resources in order. */
  note(scope: string | undefined): string[] {
    const found: string[] = [];
    for (const value of scope?.split(' ') ?? []) {
      const resource = originOf(value);
      if (!resource) continue;
      const scopes = this.#scopes.get(resource) ?? new Set<string>();
      scopes.add(value);
      this.#scopes.set(resource, scopes);
      if (!found.includes(resource)) found.push(resource);
    }
    return found;
  }

  scopesOf(resource: string): string[] {
    return [...(this.#scopes.get(resource) ?? [])];
  }
}

function originOf(scope: string): string | undefined {
  if (!/^https?:\/\//.test(scope)) return undefined;
  try {
    return new URL(scope).origin;
  } catch {
    return undefined;
  }
}
