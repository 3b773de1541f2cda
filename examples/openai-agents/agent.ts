/**
 * OpenAI Agents SDK (JS) + Mailroom: the agent creates its inbox, emails someone, waits for the
 * reply, reads it through Mailroom's agent view and reports a summary.
 *
 *   MAILROOM_TOKEN=mr_… OPENAI_API_KEY=sk-… node examples/openai-agents/agent.ts ada@example.com
 */
import { Agent, OpenAIProvider, Runner, tool } from '@openai/agents';
import { Mailroom } from '@mailroom/sdk';
import { asText, mailroomTools } from '../shared/mailroom-tools.ts';
import { INSTRUCTIONS, optionsFromEnv, taskPrompt, type ExampleOptions } from '../shared/options.ts';

export async function run(opts: ExampleOptions): Promise<{ output: string }> {
  const mr = new Mailroom(opts.mailroom);
  const agent = new Agent({
    name: 'Outreach agent',
    instructions: INSTRUCTIONS,
    model: opts.openai.model,
    tools: mailroomTools(mr, opts).map((t) => tool({
      name: t.name,
      description: t.description,
      parameters: t.input,
      execute: async (args) => asText(await t.execute(args)),
    })),
  });
  const runner = new Runner({
    // Chat Completions rather than the Responses API: every OpenAI-compatible server speaks it.
    modelProvider: new OpenAIProvider({ baseURL: opts.openai.baseURL, apiKey: opts.openai.apiKey, useResponses: false }),
    // Traces are uploaded to OpenAI with OPENAI_API_KEY, which is another provider's key when the
    // model is served elsewhere.
    tracingDisabled: opts.openai.baseURL !== undefined,
  });
  const result = await runner.run(agent, taskPrompt(opts), { maxTurns: opts.maxSteps });
  return { output: String(result.finalOutput ?? '') };
}

export async function main(): Promise<void> {
  const { output } = await run(optionsFromEnv());
  console.log(output);
}

if (import.meta.main) await main();
