"""Custom actions for the Signpost Rasa assistant, served by rasa-sdk (`make run-actions`).

rasa-sdk imports every module in this package at start-up, so modules do no work at import time.
"""

import warnings

# rasa-sdk 3.21 warns on its first action call that Rasa 3.6.x "might not be compatible" (it compares the
# major and minor numbers only). The action protocol is the same, and tests/e2e prove it against the real
# Rasa 3.6 server (slots, forms, custom slot mappings, the handover payload); the warning would only
# mislead whoever reads the log.
warnings.filterwarnings(
    "ignore",
    message="Your versions of rasa and rasa_sdk might not be compatible",
    category=UserWarning,
    module="rasa_sdk.utils",
)
