/**
 * Model-backed agent roles (a campaign's `agents: { respond: llm }`): the Vercel AI SDK against an
 * OpenAI-compatible endpoint or Anthropic, with the roles' own zod schemas as structured output.
 * Nothing here opens a connection or reads the environment on import.
 */
export { fenced, llmAgent, llmPersonalize, llmResearch, llmRespond, llmSequence } from './agents.ts';
export { describeFailure, generate, LlmCallError } from './generate.ts';
export { languageModel, type Attempts } from './model.ts';
export { loadPrompts, parsePrompt, PromptError, PROMPT_SLOTS, PROMPTS_DIR, renderPrompt, shippedPrompts, type Prompt } from './prompts.ts';
export { DEFAULT_BASE_URL, resolveLlmSettings, SERVER_DEFAULTS, type LlmServerSettings, type LlmSettings } from './settings.ts';
