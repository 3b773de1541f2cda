import { serveTasks } from '../threads/serve.ts';
import { prepareSend } from './prepare.ts';

/** A send-preparation thread (see prepare.ts): compose, sign and parse, for sends posted by the main thread. */
serveTasks(prepareSend);
