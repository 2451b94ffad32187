# The HTTP gateway + playground (web/) without the model: the client library, Starlette and uvicorn, pinned by the
# project's constraints.txt. Build from the repository root:
#   docker build -f docs/deploy/web.Dockerfile -t sketchygan-web:0.1.0 .
FROM python:3.11-slim
WORKDIR /app
COPY constraints.txt ./
COPY client ./client
RUN pip install --no-cache-dir -c constraints.txt "./client[metrics]" starlette uvicorn
COPY web ./web
USER 65534
EXPOSE 8080
CMD ["python", "-m", "web", "--host", "0.0.0.0", "--port", "8080", "--triton", "sketchygan:8001"]
