"""Wire shapes only: pydantic models of OpenAI's objects and of our extensions. No I/O."""
