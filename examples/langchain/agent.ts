/**
 * LangChain.js + Mailroom: ChatOpenAI bound to Mailroom tools, in a small tool-calling loop. The
 * agent creates its inbox, emails someone, waits for the reply, reads it through Mailroom's agent
 * view and reports a summary.
 *
 *   MAILROOM_TOKEN=mr_… OPENAI_API_KEY=sk-… node examples/langchain/agent.ts ada@example.com
 */
import { HumanMessage, SystemMessage, type BaseMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { ChatOpenAI } from '@langchain/openai';
import { Mailroom } from '@mailroom/sdk';
import { asText, mailroomTools } from '../shared/mailroom-tools.ts';
import { INSTRUCTIONS, optionsFromEnv, taskPrompt, type ExampleOptions } from '../shared/options.ts';

export async function run(opts: ExampleOptions): Promise<{ output: string }> {
  const mr = new Mailroom(opts.mailroom);
  const tools = mailroomTools(mr, opts).map((t) =>
    tool(async (args) => asText(await t.execute(args)), { name: t.name, description: t.description, schema: t.input }));
  const model = new ChatOpenAI({
    model: opts.openai.model,
    apiKey: opts.openai.apiKey,
    configuration: { baseURL: opts.openai.baseURL },
  }).bindTools(tools);

  const messages: BaseMessage[] = [new SystemMessage(INSTRUCTIONS), new HumanMessage(taskPrompt(opts))];
  for (let step = 0; step < opts.maxSteps; step++) {
    const answer = await model.invoke(messages);
    messages.push(answer);
    if (!answer.tool_calls?.length) return { output: answer.text };
    for (const call of answer.tool_calls) {
      const called = tools.find((t) => t.name === call.name);
      if (!called) throw new Error(`the model called an unknown tool: ${call.name}`);
      messages.push(await called.invoke(call)); // a ToolMessage answering this call
    }
  }
  throw new Error(`no final answer after ${opts.maxSteps} model turns`);
}

export async function main(): Promise<void> {
  const { output } = await run(optionsFromEnv());
  console.log(output);
}

if (import.meta.main) await main();
