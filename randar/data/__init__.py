"""Training data for RandAR Studio's default model (emoji artwork)."""

from .emoji import EmojiDataset, build_emoji_dataset, load_emoji_dataset, split_of

__all__ = ["EmojiDataset", "build_emoji_dataset", "load_emoji_dataset", "split_of"]
