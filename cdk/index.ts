/** `import { PgRelay } from 'pgrelay/cdk'`. */
export { PgRelay, type AddConsumerOptions, type PgRelaySource } from './pgrelay-construct.ts';
export type { PgRelayAlarms, PgRelayDatabase, PgRelayMonitorProps, PgRelayOutputs, PgRelayProps, PgRelaySourceProps, PgRelayStreamerProps } from './props.ts';
