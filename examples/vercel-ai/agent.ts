/**
 * Vercel AI SDK + Mailroom: generateText with Mailroom tools over several steps. The agent creates
 * its inbox, emails someone, waits for the reply, reads it through Mailroom's agent view and
 * reports a summary.
 *
 *   MAILROOM_TOKEN=mr_… OPENAI_API_KEY=sk-… node examples/vercel-ai/agent.ts ada@example.com
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, stepCountIs, tool, type ToolSet } from 'ai';
import { Mailroom } from '@mailroom/sdk';
import { mailroomTools } from '../shared/mailroom-tools.ts';
import { INSTRUCTIONS, optionsFromEnv, taskPrompt, type ExampleOptions } from '../shared/options.ts';

export async function run(opts: ExampleOptions): Promise<{ output: string }> {
  const mr = new Mailroom(opts.mailroom);
  const provider = createOpenAICompatible({
    name: 'openai',
    baseURL: opts.openai.baseURL ?? 'https://api.openai.com/v1',
    apiKey: opts.openai.apiKey,
  });
  const tools: ToolSet = Object.fromEntries(mailroomTools(mr, opts).map((t) =>
    [t.name, tool({ description: t.description, inputSchema: t.input, execute: (args) => t.execute(args) })]));

  const result = await generateText({
    model: provider.chatModel(opts.openai.model),
    instructions: INSTRUCTIONS,
    prompt: taskPrompt(opts),
    tools,
    stopWhen: stepCountIs(opts.maxSteps),
  });
  return { output: result.text };
}

export async function main(): Promise<void> {
  const { output } = await run(optionsFromEnv());
  console.log(output);
}

if (import.meta.main) await main();
