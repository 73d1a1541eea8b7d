"""Running GGUF models: loading, sampling, chat templates, sessions, IE, CLI, server."""
