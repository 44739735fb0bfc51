"""The generative service: summaries, reply drafts, marketing copy and grounded expert answers."""
