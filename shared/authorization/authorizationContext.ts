import type { AccountStateWriter } from '../accounts/accountStateWriter';
import type { Account } from '../config/account';
import type { Logger } from '../log/logger';
import type { StorageClients } from '../storage/storageClients';
import type { RefreshLease } from '../tokens/refreshLease';
import type { TokenStore } from '../tokens/tokenStore';
import type { OAuthContext } from '../oauth/providerClient';

/** What starting an authorization needs. */
export interface AuthorizationContext extends OAuthContext {
  accounts: readonly Account[];
  publicBaseUrl: string;
  storage: StorageClients;
  log: Logger;
}

/** What finishing one at the callback needs: it stores the tokens and records the new grant. */
export interface CallbackDeps extends AuthorizationContext {
  tokenStore: TokenStore;
  accountStates: AccountStateWriter;
  /** The refresh lease: a refresh racing the callback must not overwrite the new grant's tokens. */
  refreshLease: RefreshLease;
}
