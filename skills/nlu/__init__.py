"""Natural-language understanding: Rasa-format training data, engines, model lifecycle."""
