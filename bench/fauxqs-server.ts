/**
 * Child process: the SQS emulator (fauxqs, loopback only) and the EventBridge stand-in
 * (test/helpers/fake-eventbridge.ts) in their own process, so their request handling never
 * shares a measured process's event loop or CPU time. Prints
 * `{"endpoint": ..., "eventBridgeEndpoint": ...}` once listening; stops on SIGTERM/SIGINT or
 * when the bench goes away (stdin closes).
 */
import { startFakeEventBridge } from '#test/helpers/fake-eventbridge.ts';
import { startSqsEmulator } from '#dev/sqs-emulator.ts';

const sqs = await startSqsEmulator();
const eventBridge = await startFakeEventBridge({ buses: ['bench'] }); // the transform bench's bus
// The fake keeps every event and call for tests to inspect; the bench only needs the answers.
setInterval(() => {
  eventBridge.events.length = 0;
  eventBridge.lost.length = 0;
  eventBridge.calls.length = 0;
}, 500).unref();
const stop = () => {
  void Promise.allSettled([sqs.stop(), eventBridge.close()]).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.stdout.write(`${JSON.stringify({ endpoint: sqs.endpoint, eventBridgeEndpoint: eventBridge.endpoint })}\n`);
