"""FastAPI app: OpenAI-compatible Files, Batches and Models, plus our extensions."""
