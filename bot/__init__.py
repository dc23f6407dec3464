"""The Signpost adapter: delivers the conversation (terminal chat now; Telegram in the adapter issue)."""
