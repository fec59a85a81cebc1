"""What kind of pictures the loaded model knows, said on the editing tabs (Inpaint, Outpaint, Upscale).

Why: the default model was trained on emoji only. A photo inpainted with it gets flat, emoji-coloured
patches, and users took that for a bug. The editing tabs therefore say, from the model card, what the
model was trained on, and for a model that does not know photos, which command gets one that does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from randar.studio import Studio

# The official ImageNet model to suggest for photos (registry name), and the classes of ImageNet: a model
# with this many classes was trained on photos.
PHOTO_MODEL = "randar-xl"
PHOTO_MODEL_COMMAND = f"randar download {PHOTO_MODEL}"
IMAGENET_CLASSES = 1000
NO_MODEL_NOTE = "No model is loaded: pick one in the Model list above to see what kind of pictures it knows."


def knows_photos(studio: "Studio") -> bool:
    """Whether the model was trained on photos: the official checkpoints are ImageNet (1000 classes); any
    model whose name or card says emoji, or with another class set, is not."""
    text = f"{studio.name} {studio.description or ''}".lower()
    return "emoji" not in text and studio.num_classes == IMAGENET_CLASSES


def model_scope_note(studio: "Studio | None") -> str:
    """One markdown paragraph: what the model knows (its card's description) and, for a model that does
    not know photos, how to get one that does."""
    if studio is None:
        return NO_MODEL_NOTE
    size = f"{studio.image_size}×{studio.image_size} px"
    about = (studio.description or "").strip() or f"{studio.num_classes} classes"
    note = f"ℹ️ **What {studio.name} knows** ({size}): {about}"
    if knows_photos(studio):
        return note
    kind = "emoji" if "emoji" in f"{studio.name} {about}".lower() else f"its {studio.num_classes} classes"
    return (f"{note}  \nIt was trained on {kind}, not photos: photos get patches in that style. For photos, "
            f"download an ImageNet model with `{PHOTO_MODEL_COMMAND}`{_download_size()}, then pick it in the "
            "Model list.")


def _download_size() -> str:
    from randar.registry import REGISTRY

    spec = REGISTRY.get(PHOTO_MODEL)
    size = spec.approx_bytes if spec is not None else None
    return f" (about {size / 1e9:.1f} GB)" if size else ""


__all__ = ["model_scope_note", "knows_photos", "PHOTO_MODEL_COMMAND"]
