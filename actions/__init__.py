"""Custom actions for the Signpost Rasa assistant, served by rasa-sdk (`make run-actions`).

rasa-sdk imports every module in this package at start-up, so modules do no work at import time.
"""
