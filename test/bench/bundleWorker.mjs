// The built bundle as the Functions worker runs it: plain node, no TypeScript loader. The bundle registers its
// functions with a stand-in for `@azure/functions-core` (beside the bundle's copy, see appRss.ts); the parent
// process plays the host (receives and deletes queue messages) and hands each message over by IPC.
const handlers = new Map();
globalThis.__outboxBenchRegister = (metadata, handler) => handlers.set(metadata.name, handler);

let peak = 0;
const sample = () => (peak = Math.max(peak, process.memoryUsage.rss()));
setInterval(sample, 25).unref();

await import(process.env.OUTBOX_BUNDLE);
sample();
const afterLoad = process.memoryUsage.rss();
const sendMail = handlers.get('sendMail');
if (!sendMail) throw new Error('the bundle registered no sendMail');

process.on('message', (message) => {
  if (message.type === 'invoke') {
    const context = { invocationId: message.id, functionName: 'sendMail', triggerMetadata: message.meta };
    Promise.resolve(sendMail(message.payload, context)).then(
      () => process.send({ type: 'done', id: message.id }),
      (error) => process.send({ type: 'done', id: message.id, error: String(error?.stack ?? error) }),
    );
  } else if (message.type === 'stats') {
    sample();
    process.send({ type: 'stats', rssMbPeak: peak / 1048576, rssMbAfterLoad: afterLoad / 1048576 });
  } else if (message.type === 'exit') {
    process.exit(0);
  }
});
process.send({ type: 'ready' });
