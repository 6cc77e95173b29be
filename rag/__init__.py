"""The core: settings, types, errors, models, retrieval and answering.

Nothing here imports FastAPI or the CLI; the edges (``api/``) wire it together.
"""
