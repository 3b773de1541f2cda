import { serveTasks } from '../threads/serve.ts';
import { prepareSend } from './prepare.ts';

/**
 * A send-preparation thread (see prepare.ts): compose, sign and parse, for sends posted by the main
 * thread. All CPU, so one at a time: a burst of sends reaches its group commit one by one.
 */
serveTasks(prepareSend, { oneAtATime: true });
