"""Command-line entry points of the service, wired into `pynq-sparse serve` and `pynq-sparse listen`.

Usage::

    pynq-sparse serve [--host 127.0.0.1] [--port 8000] [--backend auto] [--model m.pskw]
    pynq-sparse listen                       # local microphone (sounddevice)
    pynq-sparse listen --from-file talk.wav  # replay a recording in real time
    python -m pynq_sparse.service            # same as `pynq-sparse serve`

Every other setting comes from PYNQ_SPARSE_* environment variables (docs/service.md).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from pynq_sparse.errors import PynqSparseError


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of `pynq-sparse serve`."""
    parser.add_argument("--host", default=os.environ.get("PYNQ_SPARSE_HOST", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 to reach a board over the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PYNQ_SPARSE_PORT", "8000")),
                        help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--model", default=None, help="model file (.pskw); default $PYNQ_SPARSE_MODEL or the "
                                                      "shipped model")
    parser.add_argument("--backend", default=None,
                        help="auto (default: the FPGA overlay if present, else its emulation), fpga, emulated, cpu "
                             "or golden")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def run_serve(args: argparse.Namespace) -> int:
    """Start the service under uvicorn until SIGINT/SIGTERM; in-flight work is drained before exit."""
    import uvicorn

    from .core.config import Settings
    from .main import create_app
    from .server import Server

    settings = Settings.from_env(MODEL=args.model, BACKEND=args.backend)
    app = create_app(settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=settings.SHUTDOWN_TIMEOUT_S or None, lifespan="on")
    server = Server(config, app)
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; note them instead of dying by them,
    # so that a drained shutdown exits with status 0.
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _frame: received.append(s)) for sig in (signal.SIGINT,
                                                                                      signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1


def add_listen_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of `pynq-sparse listen`."""
    parser.add_argument("--from-file", metavar="FILE", default=None,
                        help="replay this recording (any rate/channels) in real time instead of the microphone")
    parser.add_argument("--fast", action="store_true", help="with --from-file: as fast as possible, not real time")
    parser.add_argument("--device", default=None, help="sounddevice input device (index or name)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (microphone)")
    parser.add_argument("--model", default=None, help="model file (.pskw); default: the shipped model")
    parser.add_argument("--backend", default="auto", help="auto, fpga, emulated, cpu or golden")
    parser.add_argument("--threshold", type=float, default=None, help="detection threshold (default: the detector's)")
    parser.add_argument("--chunk", type=float, default=0.1, help="seconds of audio per chunk (default 0.1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per detection")
    return parser


def run_listen(args: argparse.Namespace) -> int:
    """Print keyword detections from the microphone or a replayed file; 2 when no microphone exists."""
    from pynq_sparse.model_file import load_model
    from pynq_sparse.spotter import KeywordSpotter, StreamingDetector

    from .listen import NoMicrophoneError, format_detection, listen_file, listen_microphone

    try:
        spotter = KeywordSpotter(model=load_model(args.model), backend=args.backend)
        options = {} if args.threshold is None else {"threshold": args.threshold}
        detector = StreamingDetector(spotter, **options)
        source = f"file {args.from_file}" if args.from_file else f"microphone {args.device or '(default)'}"
        print(f"listening to {source} on {spotter.backend_name}; Ctrl-C stops", file=sys.stderr, flush=True)
        if args.from_file:
            detections = listen_file(args.from_file, detector, chunk_s=args.chunk, fast=args.fast)
        else:
            device = int(args.device) if args.device and args.device.isdigit() else args.device
            detections = listen_microphone(detector, device=device, chunk_s=args.chunk, duration_s=args.duration)
        count = 0
        for det in detections:
            count += 1
            if args.json:
                print(json.dumps({"label": det.label, "time_s": round(float(det.time_s), 3),
                                  "confidence": round(float(det.confidence), 4)}), flush=True)
            else:
                print(format_detection(det), flush=True)
        print(f"{count} detections", file=sys.stderr)
        return 0
    except NoMicrophoneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (PynqSparseError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pynq_sparse.service [serve|listen] ...` (serve when no command is given)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("serve", "listen") else "serve"
    parser = argparse.ArgumentParser(prog=f"pynq-sparse {command}")
    if command == "listen":
        return run_listen(add_listen_arguments(parser).parse_args(argv))
    return run_serve(add_serve_arguments(parser).parse_args(argv))
