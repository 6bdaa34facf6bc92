"""The interfaces: CLI (and later the HTTP API and web UI), all delegating to the layers below."""
