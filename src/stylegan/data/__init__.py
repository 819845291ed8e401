"""Training data: the dataset tool (`stylegan dataset`), the loader, and built-in datasets.

``ImageDataset`` / ``open_dataset`` read folders and zips in the stylegan2-ada-pytorch layout;
``convert_dataset`` writes them; ``builtin:mnist`` and ``builtin:emoji*`` need no manual download.

Modules, each importing only those before it:
``format`` (file names, image rules, the one label parser), ``safe_pickle`` (the restricted
unpickler for data pickles) < ``sources`` (folder / zip / tar / array readers) <
``official_sources`` (the official tool's CIFAR-10 / MNIST idx / LSUN LMDB inputs), ``tool``
(writes a source as a dataset zip) < ``builtin`` (datasets from package registries) <
``resolve`` (spec -> path or source; the one place that knows ``builtin:``) < ``dataset`` (the
loader) < ``stream``.
"""

from stylegan.data.dataset import ImageDataset, open_dataset
from stylegan.data.format import DatasetError
from stylegan.data.resolve import convert_dataset
from stylegan.data.tool import ConversionSummary

__all__ = ["ConversionSummary", "DatasetError", "ImageDataset", "convert_dataset", "open_dataset"]
