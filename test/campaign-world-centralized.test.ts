import { patternWorldSuite } from './helpers/campaign.ts';

// Issue 7: the 200-lead world campaign under the centralized pattern (helpers/campaign.ts).
patternWorldSuite('centralized');
