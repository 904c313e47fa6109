"""Packaging for pynq-sparse (PYNQ conventions: pynq.notebooks and pynq.overlays entry points).

Usage::

    pip install .                       # inference: front end, golden model, backends, driver
    pip install .[train]                # + PyTorch training and ONNX export
    pip install .[service]              # + FastAPI/uvicorn service and microphone demo
    pip install --no-build-isolation .  # on a PYNQ image, to build against its installed pynq
"""
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the optional C kernels of the CPU backend; without a C compiler the package still
    installs and the numba kernels do everything (pynq_sparse.backends.cpu_sparse)."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - any compiler failure leaves the numba path
            print(f"warning: optional extension {ext.name} not built ({exc}); the numba kernels are used")


# Boards with an overlay folder overlays/<board>/ (pynq_sparse.overlays.block_design.BOARDS).
BOARDS = ["ultra96v2", "zcu104", "kv260", "u250"]

packages = find_packages(include=["pynq_sparse", "pynq_sparse.*"])
packages += ["pynq_sparse.host", "pynq_sparse.service", "pynq_sparse.overlays", "pynq_sparse.notebooks"]
packages += ["pynq_sparse.service." + p for p in find_packages(where="service")]
packages += ["pynq_sparse.overlays." + p for p in find_packages(where="overlays", exclude=["tests", "tests.*"])]
packages += ["pynq_sparse.overlays." + b for b in BOARDS]    # data-only folders (namespace packages)

setup(
    name="pynq-sparse",
    version="0.1.0",
    description="Sparse-sparse (Complementary Sparsity) keyword spotting on PYNQ FPGA boards, "
                "with a bit-exact golden model, fast CPU backend and emulated overlay",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.8",
    packages=packages,
    ext_modules=[Extension("pynq_sparse.backends._sparse_c", ["pynq_sparse/backends/_sparse_c.c"],
                           extra_compile_args=[] if sys.platform == "win32" else ["-O3", "-std=c99"])],
    cmdclass={"build_ext": OptionalBuildExt},
    package_dir={"pynq_sparse.host": "host", "pynq_sparse.service": "service",
                 "pynq_sparse.overlays": "overlays", "pynq_sparse.notebooks": "notebooks"},
    package_data={
        "pynq_sparse": ["data/models/*.pskw", "data/models/*.onnx", "data/models/*.json",
                        "data/samples/*.wav", "data/samples/*.md", "data/samples/LICENSE"],
        "pynq_sparse.notebooks": ["*.ipynb"],
        "pynq_sparse.service": ["static/*"],
        # per board: .hwh (what the emulated device loads), bitstream or its .link, README
        **{"pynq_sparse.overlays." + b: ["*.hwh", "*.bit", "*.xclbin", "*.link", "*.json", "README.md"]
           for b in BOARDS},
    },
    install_requires=[
        "numpy>=1.22,<2",
        "scipy>=1.8",
        "librosa>=0.10",
        "soundfile>=0.12",
        "soxr>=0.3",
        "numba>=0.56",
        "pynq>=3.0",
    ],
    extras_require={
        "train": ["torch>=2.0", "onnx>=1.14", "onnxruntime>=1.16"],
        "service": ["fastapi>=0.100", "uvicorn[standard]>=0.23", "prometheus_client>=0.17",
                    "python-multipart>=0.0.6", "sounddevice>=0.4"],
    },
    entry_points={
        "console_scripts": ["pynq-sparse=pynq_sparse.cli:main"],
        "pynq.notebooks": ["pynq-sparse = pynq_sparse.notebooks"],
        # pynq.Overlay("sparse_kws.bit") searches <entry point folder>/sparse_kws.bit: one entry per board folder
        "pynq.overlays": ["pynq-sparse = pynq_sparse.overlays"]
                         + [f"pynq-sparse-{b} = pynq_sparse.overlays.{b}" for b in BOARDS],
    },
)
