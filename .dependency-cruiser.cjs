/**
 * Imports run one way. `npm run deps` (run by .ci/run) fails on an import cycle between files, or between
 * folders of shared/ (a folder counts as one node), and on the layer rules below.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Files that import each other, directly or through others, are one module in disguise.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-circular-folders',
      severity: 'error',
      comment: 'A folder that imports a folder that imports it back is one folder in disguise.',
      scope: 'folder',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shared-root-files-are-leaves',
      severity: 'error',
      comment:
        'Files directly in shared/ (names, settings, errors, ...) are imported by every folder, so they import none; ' +
        'only the composition root, shared/app.ts, builds on the folders.',
      from: { path: '^shared/[^/]+\\.ts$', pathNot: '^shared/app\\.ts$' },
      to: { path: '^shared/[^/]+/' },
    },
    {
      name: 'nothing-imports-the-composition-root',
      severity: 'error',
      comment: 'Use cases receive what they use; only functions/, local/ and tests reach for the app.',
      from: { path: '^shared/' },
      to: { path: '^shared/app\\.ts$' },
    },
    {
      name: 'shared-does-not-know-its-hosts',
      severity: 'error',
      from: { path: '^shared/' },
      to: { path: '^(functions|local|test|relay)/' },
    },
    {
      name: 'functions-do-not-use-the-local-host',
      severity: 'error',
      from: { path: '^functions/' },
      to: { path: '^(local|test|relay)/' },
    },
    {
      name: 'building-blocks-do-not-call-use-cases',
      severity: 'error',
      comment:
        'config, storage, message, log, web, limits, smtp, graph and oauth are building blocks; account state, tokens, ' +
        'delivery, authorization and admin are built on them, never the other way round.',
      from: { path: '^shared/(config|storage|message|log|web|limits|smtp|graph|oauth)/' },
      to: { path: '^shared/(accounts|tokens|delivery|authorization|admin)/' },
    },
    {
      name: 'smtp-takes-a-token-structurally',
      severity: 'error',
      comment: 'The SMTP layer authenticates with the token it is handed and knows nothing of where it came from.',
      from: { path: '^shared/smtp/' },
      to: { path: '^shared/(config/loadAccounts|storage|message)' },
    },
    {
      name: 'alerts-are-raised-by-the-state-writer',
      severity: 'error',
      comment: 'Entering a bad state raises the alert, once per incident: only shared/accounts/ sends alerts.',
      from: { pathNot: '^shared/(accounts/|app\\.ts$)' },
      to: { path: '^shared/accounts/accountAlerts\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules|\\.local)/' },
  },
};
