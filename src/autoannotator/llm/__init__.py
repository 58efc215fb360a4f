"""LLM plumbing shared by the reviewers: prompts, strict label parsing, the OpenAI-compatible client, prices."""
