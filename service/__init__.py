"""Keyword-spotting web service (pynq_sparse.service): REST, WebSocket streaming, telemetry and a live demo.

Layout (the full-stack FastAPI template's backend/app)::

    main.py            create_app(): builds the FastAPI app, its lifespan starts the engine
    api/main.py        one router with every route
    api/routes/*.py    recognize, model, health, telemetry (+ /metrics), stream (WebSocket), demo page
    api/deps.py        Annotated dependencies (settings, engine, recognizer, API key)
    core/config.py     Settings from PYNQ_SPARSE_* environment variables
    core/engine.py     recognizer + micro-batching queue + telemetry + metrics
    core/batcher.py    the bounded micro-batching queue and its device worker thread
    static/            the microphone demo page
    server.py          uvicorn Server that tells the engine when shutdown begins
    cli.py, listen.py  `pynq-sparse serve` and `pynq-sparse listen`
    testing.py         the real app under uvicorn on a free loopback port (tests, benchmark)

See docs/service.md.
"""
