FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY simulator simulator
COPY broker broker
COPY providers providers
COPY workers workers
COPY api api
COPY cli cli
RUN pip install --no-cache-dir .
ENTRYPOINT ["broker"]
CMD ["serve", "--host", "0.0.0.0"]
