export type { Account, GraphSettings, Transport } from './account';
export type { AccountInput, ClientAuth } from './accountSchema';
export type { Provider, SmtpSettings } from './presets';
export { PRESETS } from './presets';
export { loadAccounts, parseAccounts, findAccount } from './loadAccounts';
