"""The Signpost adapter: Telegram (or a terminal chat), the relay to Rasa, and handover to moderators."""
