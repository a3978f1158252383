/**
 * oidc-provider warns, in red on a terminal, about two things that are true and intended here: Node 20 is not
 * its preferred runtime, and its state lives in memory. The banner says the second in plain words; the raw
 * warnings would only alarm a newcomer. Import this before the identity provider.
 */
const EXPECTED = [
  /^oidc-provider WARNING: Unsupported runtime\b/,
  /^oidc-provider WARNING: a quick start development-only in-memory adapter\b/,
];

const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  const text = typeof args[0] === 'string' ? args[0].replace(/\x1b\[[\d;]*m/g, '') : '';
  if (!EXPECTED.some((pattern) => pattern.test(text))) warn(...args);
};
