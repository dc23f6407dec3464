"""Code the Rasa server itself loads, named by module path in an endpoints file.

Rasa runs from the project root and puts that folder on its import path, so `rasa run` finds these
modules without installing anything. Nothing here runs at import time.
"""
