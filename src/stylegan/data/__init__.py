"""Training data: the dataset tool (`stylegan dataset`), the loader, and built-in datasets.

``ImageDataset`` / ``open_dataset`` read folders and zips in the stylegan2-ada-pytorch layout;
``convert_dataset`` writes them; ``builtin:mnist`` and ``builtin:emoji*`` need no manual download.
"""

from stylegan.data.dataset import DatasetError, ImageDataset, open_dataset
from stylegan.data.tool import ConversionSummary, convert_dataset

__all__ = ["ConversionSummary", "DatasetError", "ImageDataset", "convert_dataset", "open_dataset"]
