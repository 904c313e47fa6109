"""Error types of pynq-sparse: each failure has its own class and a message that says how to fix it.

Usage::

    from pynq_sparse.errors import AudioError
    try:
        spotter.classify("clip.wav")
    except AudioError as err:
        print(err)
"""


class PynqSparseError(Exception):
    """Base class of every error this package raises on purpose."""


# --- audio -----------------------------------------------------------------
class AudioError(PynqSparseError, ValueError):
    """Audio that cannot be turned into a spectrogram."""


class EmptyAudioError(AudioError):
    """The audio holds no samples."""


class NonFiniteAudioError(AudioError):
    """The audio holds NaN or infinite samples."""


class UndecodableAudioError(AudioError):
    """The bytes are not a WAV/FLAC/OGG file that libsndfile can decode."""


# --- inputs ----------------------------------------------------------------
class ShapeError(PynqSparseError, ValueError):
    """An array has the wrong shape or dtype for the operation."""


# --- model files -----------------------------------------------------------
class ModelFormatError(PynqSparseError, ValueError):
    """A model file that cannot be loaded."""


class NotAModelFileError(ModelFormatError):
    """The file does not start with the pynq-sparse magic bytes."""


class UnsupportedVersionError(ModelFormatError):
    """The file was written by a format version this code does not read."""


class TruncatedModelError(ModelFormatError):
    """The file is shorter than its header says."""


class ChecksumError(ModelFormatError):
    """The SHA-256 at the end of the file does not match its contents."""


class InvalidModelError(ModelFormatError):
    """The file is well-formed but breaks an invariant of docs/golden_model.md."""


# --- datasets --------------------------------------------------------------
class DatasetError(PynqSparseError, ValueError):
    """A folder that is not a Speech Commands layout, or a bad list file."""


# --- devices ---------------------------------------------------------------
class DeviceError(PynqSparseError, RuntimeError):
    """The overlay or its emulation is not usable."""


class DmaTimeoutError(DeviceError, TimeoutError):
    """A DMA transfer did not complete within its timeout."""


class DmaError(DeviceError):
    """The DMA engine reported an error (wrong length, TLAST, decode or slave error)."""


class CoreError(DeviceError):
    """The network core raised an error flag (for example a weight-memory parity error)."""
