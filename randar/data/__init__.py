"""Training data: `folder` reads any folder of pictures for `randar train` (classes from sub-folders, a held-out
split); for RandAR Studio's default model (emoji artwork), `emoji` loads a built dataset (numpy and pillow only),
`emoji_build` renders one from the artwork that `emoji_sources` finds installed."""

from .emoji import EmojiDataset, load_emoji_dataset, split_of
from .emoji_build import build_emoji_dataset

__all__ = ["EmojiDataset", "build_emoji_dataset", "load_emoji_dataset", "split_of"]
